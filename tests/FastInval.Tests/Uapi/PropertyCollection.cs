namespace FastInval.Tests.Uapi;

/// <summary>The CPU-heavy iommufd properties run alone, after the parallel classes, so that they never starve the
/// engine's timing-bounded concurrency stress test on a 2-core machine.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HeavyPropertyCollection
{
    public const string Name = "iommufd properties";
}
