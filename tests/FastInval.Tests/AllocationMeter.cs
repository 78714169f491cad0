namespace FastInval.Tests;

/// <summary>
/// Counts the bytes a region of code allocates on the calling thread. <see cref="GC.GetAllocatedBytesForCurrentThread"/>
/// can jump by up to one allocation quantum (about 8 KiB) when a collection runs during the region — other tests
/// allocate on other threads — even though the region allocated nothing (seen here: 6,232 and 6,648 bytes, only under
/// <c>DOTNET_EnableHWIntrinsic=0</c>, about one run in three). So the region runs again, up to
/// <see cref="Attempts"/> times, while a collection interrupted it; a region that really allocates shows it every time.
/// </summary>
internal static class AllocationMeter
{
    /// <summary>Most runs of the region.</summary>
    public const int Attempts = 5;

    /// <summary>Bytes <paramref name="region"/> allocated on this thread, from a run that no collection interrupted
    /// (or the last of <see cref="Attempts"/> runs). The region must be safe to run more than once.</summary>
    public static long Measure(Action region)
    {
        long bytes = 0;
        for (int attempt = 0; attempt < Attempts; attempt++)
        {
            int collections = GC.CollectionCount(0);
            long before = GC.GetAllocatedBytesForCurrentThread();
            region();
            bytes = GC.GetAllocatedBytesForCurrentThread() - before;
            if (GC.CollectionCount(0) == collections)
            {
                break;
            }
        }

        return bytes;
    }
}
