using FastInval.Fuzz;

namespace FastInval.Tests.Fuzz;

/// <summary>
/// Corpora are regression tests: every committed input of every fuzz target runs through the uninstrumented build with
/// the same oracles as under AFL (STYLE: the DotnetFuzzing replay mode). A seeded in-process random run of each target
/// adds cheap coverage between fuzzing campaigns.
/// </summary>
public class CorpusReplayTests
{
    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        foreach (IFuzzer f in Fuzzers.All)
        {
            data.Add(f.Name);
        }

        return data;
    }

    internal static string CorpusDirectory(string target)
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "fuzz", "FastInval.Fuzz", "Corpora", target);
            if (File.Exists(Path.Combine(d.FullName, "FastInval.sln")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("repository root (FastInval.sln) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void EveryTarget_IsFoundByReflectionAndHasACorpus()
    {
        Assert.Contains(Fuzzers.All, f => f.Name == "EngineDifferential");
        Assert.Contains(Fuzzers.All, f => f.Name == "KernelAgreement");
        Assert.Contains(Fuzzers.All, f => f.Name == "VtdQueue");
        Assert.Contains(Fuzzers.All, f => f.Name == "IommufdInvalidate");
        Assert.Contains(Fuzzers.All, f => f.Name == "IommufdIoctl");
        Assert.Contains(Fuzzers.All, f => f.Name == "SmmuQueue");
        Assert.Contains(Fuzzers.All, f => f.Name == "AmdViQueue");
        Assert.Contains(Fuzzers.All, f => f.Name == "FrameDecoder");
        foreach (IFuzzer f in Fuzzers.All)
        {
            Assert.True(Directory.Exists(CorpusDirectory(f.Name)), $"no corpus folder for {f.Name}");
            Assert.NotEmpty(Directory.GetFiles(CorpusDirectory(f.Name)));
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void EveryCommittedInput_PassesTheTargetsOracles(string target)
    {
        IFuzzer fuzzer = Fuzzers.Find(target)!;
        string[] files = Directory.GetFiles(CorpusDirectory(target));
        var failures = new List<string>();
        foreach (string file in files.Order(StringComparer.Ordinal))
        {
            try
            {
                fuzzer.FuzzTarget(File.ReadAllBytes(file));
            }
            catch (Exception e)
            {
                failures.Add($"{Path.GetFileName(file)}: {e.GetType().Name}: {e.Message}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.NotEmpty(files);
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void SeededRandomInputs_PassTheTargetsOracles(string target)
    {
        IFuzzer fuzzer = Fuzzers.Find(target)!;
        var rng = new Random(20261123);
        var corpus = Directory.GetFiles(CorpusDirectory(target)).Select(File.ReadAllBytes).ToArray();
        for (int i = 0; i < 300; i++)
        {
            // Half fresh random bytes, half mutated seeds (flip, insert, truncate), as a fuzzer would.
            byte[] input;
            if (i % 2 == 0 || corpus.Length == 0)
            {
                input = new byte[rng.Next(0, 600)];
                rng.NextBytes(input);
            }
            else
            {
                var list = corpus[rng.Next(corpus.Length)].ToList();
                for (int m = rng.Next(1, 6); m > 0 && list.Count > 0; m--)
                {
                    int at = rng.Next(list.Count);
                    switch (rng.Next(3))
                    {
                        case 0: list[at] ^= (byte)(1 << rng.Next(8)); break;
                        case 1: list.Insert(at, (byte)rng.Next(256)); break;
                        default: list.RemoveRange(at, list.Count - at); break;
                    }
                }

                input = list.ToArray();
            }

            try
            {
                fuzzer.FuzzTarget(input);
            }
            catch (Exception e)
            {
                Assert.Fail($"input #{i} ({Convert.ToHexString(input)}): {e.GetType().Name}: {e.Message}");
            }
        }
    }
}
