using FastInval.Reference.Scenarios;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Properties;

/// <summary>
/// The fast engine against the naive <see cref="Reference.ReferenceEngine"/> on random interleavings of fills, lookups,
/// descriptors and batches drawn from small palettes. Each scenario picks its scan kernel from
/// <see cref="TagScanKernels.Available"/>, so every kernel runs thousands of scenarios. On failure FsCheck prints the
/// seed to replay and the shrunk scenario as C# calls; the label says which operation disagreed and how.
/// </summary>
public class EngineVersusReferenceProperties
{
#if FSCHECK_SOAK
    private const int Cases = 300_000; // dotnet test -c Release -p:FsCheckSoak=true
#else
    private const int Cases = 10_000;
#endif

    private static Property Check(Arbitrary<Scenario> scenarios, Func<Scenario, string?> run) =>
        Prop.ForAll(scenarios, s =>
        {
            string? why;
            try
            {
                why = run(s);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "agree").Classify(true, TagScanKernels.Name(s.Kernel));
        });

    /// <summary>(a) With room for everything, the fast engine answers every lookup, fill and descriptor exactly as the
    /// reference does, and the caches are equal after every invalidation and at the end.</summary>
    [Property(MaxTest = Cases)]
    public Property Engine_RoomyCachesRandomOperations_AgreesWithReferenceExactly() =>
        Check(Generators.Roomy(faults: false), Differential.RunExact);

    /// <summary>(b) With 1–8 entries per cache, the fast caches only ever forget: they hold a subset of the reference's
    /// entries, and every hit is the documented answer among what they hold.</summary>
    [Property(MaxTest = Cases)]
    public Property Engine_TinyCachesRandomOperations_NeverInventsOrResurrects() =>
        Check(Generators.Cramped(), Differential.RunEvicting);

    /// <summary>(c) Under random fault plans (dead devices, faulting ordinals, seeded rates, plans swapped between
    /// batches), per-descriptor outcomes are equal and the caches agree.</summary>
    [Property(MaxTest = Cases)]
    public Property Engine_RandomFaultPlans_SameOutcomesAndCaches() =>
        Check(Generators.Roomy(faults: true), Differential.RunExact);
}
