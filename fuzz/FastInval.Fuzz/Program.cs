using FastInval.Fuzz;
using SharpFuzz;

// fastinval fuzz host.
//   FastInval.Fuzz <Target>                 run under AFL++ (out-of-process fork server; survives crashes of the target)
//   FastInval.Fuzz --inproc <Target>        run under AFL++ in-process (faster)
//   FastInval.Fuzz --replay <Target> <file|dir>...   run inputs once without a fuzzer, report failures (exit 1 on any)
//   FastInval.Fuzz --list                   the targets
if (args.Length == 0 || args[0] is "--help" or "-h")
{
    Console.Error.WriteLine("usage: FastInval.Fuzz [--inproc] <Target> | --replay <Target> <file|dir>... | --list");
    Console.Error.WriteLine("targets: " + string.Join(", ", Fuzzers.All.Select(f => f.Name)));
    return 2;
}

if (args[0] == "--list")
{
    foreach (IFuzzer f in Fuzzers.All)
    {
        Console.WriteLine(f.Name);
    }

    return 0;
}

if (args[0] == "--replay")
{
    IFuzzer target = Fuzzers.Find(args.ElementAtOrDefault(1) ?? "") ?? throw new ArgumentException("unknown target");
    int failures = 0, runs = 0;
    foreach (string path in args.Skip(2).SelectMany(p => Directory.Exists(p) ? Directory.GetFiles(p) : [p]).Order(StringComparer.Ordinal))
    {
        runs++;
        try
        {
            target.FuzzTarget(File.ReadAllBytes(path));
        }
        catch (Exception e)
        {
            failures++;
            Console.WriteLine($"FAIL {path}: {e.GetType().Name}: {e.Message}");
        }
    }

    Console.WriteLine($"{runs} inputs replayed through {target.Name}, {failures} failed");
    return failures == 0 ? 0 : 1;
}

bool inProcess = args[0] == "--inproc";
IFuzzer fuzzer = Fuzzers.Find(args[inProcess ? 1 : 0]) ?? throw new ArgumentException("unknown target");
Action<Stream> run = stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    try
    {
        fuzzer.FuzzTarget(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }
    catch (OracleException e)
    {
        // AFL only sees crashes: turn an oracle failure into one, with the reason on stderr.
        Console.Error.WriteLine(e.Message);
        Environment.FailFast("oracle failure: " + e.Message[..Math.Min(e.Message.Length, 400)]);
    }
};

if (inProcess)
{
    Fuzzer.Run(run);
}
else
{
    Fuzzer.OutOfProcess.Run(run);
}

return 0;
