using FastInval.Reference.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>xunit assertions over <see cref="Ufd"/> (the selftests' check_*_all helpers).</summary>
internal static class UfdAssertions
{
    /// <summary>test_cmd_hwpt_check_iotlb_all / test_cmd_dev_check_cache_all: every slot has <paramref name="expected"/>.</summary>
    public static void AssertIotlb(this Ufd u, uint hwptId, params uint[] expected)
    {
        for (uint i = 0; i < expected.Length; i++)
        {
            Assert.Equal(0, u.CheckIotlb(hwptId, i, expected[i]));
        }
    }

    public static void AssertDevCache(this Ufd u, uint idevId, params uint[] expected)
    {
        for (uint i = 0; i < expected.Length; i++)
        {
            Assert.Equal(0, u.CheckDevCache(idevId, i, expected[i]));
        }
    }
}
