using FastInval.Cli;

return args.Length > 0 && args[0] == "demo" ? Demo.Run(Console.Out) : Usage();

static int Usage()
{
    Console.Error.WriteLine("usage: fastinval demo");
    return 2;
}
