using System.Buffers.Binary;
using System.Collections.Immutable;
using FastInval.Reference.Uapi;
using FastInval.Uapi;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Uapi;

/// <summary>One fuzzed ioctl: the request code, the argument's length and random bytes, then field patches.</summary>
public sealed record FuzzIoctl(uint Request, ImmutableArray<byte> Bytes, int SizeMode, ImmutableArray<(int Offset, int Value)> Patches)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"ioctl 0x{Request:x} [{Convert.ToHexString(Bytes.AsSpan())}] size={SizeMode} patches={string.Join(' ', Patches.Select(p => $"@{p.Offset}={p.Value}"))}";
}

/// <summary>
/// Random request codes, argument lengths, bytes, ids and pointers against a populated <see cref="Topology"/>:
/// <see cref="Iommufd.Ioctl"/> never throws and answers 0 or a known negative errno; the reference counts always match
/// the links; a call that fails changes nothing (object table, caches, mock slots, user memory, its argument), except
/// that a failing IOMMU_HWPT_INVALIDATE writes entry_num back and keeps the entries it handled before the failure; only
/// IOMMU_HWPT_INVALIDATE ever touches the caches.
/// </summary>
[Collection(HeavyPropertyCollection.Name)]
public class IoctlFuzzProperties
{
#if FSCHECK_SOAK
    private const int Cases = 100_000;
#else
    private const int Cases = 10_000;
#endif

    private static readonly int[] KnownErrnos =
    [
        0, -Errno.ENOENT, -Errno.EIO, -Errno.E2BIG, -Errno.ENOMEM, -Errno.EFAULT, -Errno.EBUSY, -Errno.EEXIST, -Errno.EINVAL,
        -Errno.ENOTTY, -Errno.ENOSPC, -Errno.EOPNOTSUPP, -Errno.ETIMEDOUT, -Errno.ENODEV, -Errno.EOVERFLOW,
    ];

    private static readonly uint[] Requests =
    [
        IommufdRequest.Destroy, IommufdRequest.IoasAlloc, IommufdRequest.HwptAlloc, IommufdRequest.HwptInvalidate,
        IommufdRequest.HwptInvalidate, IommufdRequest.HwptInvalidate, IommufdRequest.ViommuAlloc, IommufdRequest.VdeviceAlloc,
        IommufdRequest.TestCmd, IommufdRequest.TestCmd, 0x3B82, 0x3B7F, 0x3B95, 0x3B64, 0xC0203B8D, 0x4B8D, 0,
    ];

    /// <summary>Values patched into u32 fields: sizes, small ids, types, flags, lengths, test ops; -1 stands for the
    /// scratch buffer's address (written as a u64 at 8 and 32).</summary>
    private static readonly int[] PatchValues =
    [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 30, 31, 32, 33, 40, 48,
        68, 72, -1, 0xdead, unchecked((int)0xdeadbeef), 0x99, 2, 10, 12, 14, 16,
    ];

    [Property(MaxTest = Cases)]
    public Property Ioctl_RandomRequestsArgumentsAndPointers_NeverThrowsAndRejectedCallsChangeNothingTheyShouldNot() =>
        Prop.ForAll(Arb.From(
            from hwError in Gen.Elements(false, true)
            from count in Gen.Choose(1, 8)
            from calls in Call.ArrayOf(count)
            from scratch in Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf(96)
            select (hwError, calls, scratch)), c =>
        {
            string? why;
            try
            {
                why = Run(c.hwError, c.calls, c.scratch);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "ok");
        });

    private static Gen<FuzzIoctl> Call =>
        from request in Gen.Frequency((9, Gen.Elements(Requests)), (1, Gen.Choose(int.MinValue, int.MaxValue).Select(x => (uint)x)))
        from length in Gen.Frequency((1, Gen.Choose(0, 7)), (2, Gen.Choose(8, 80)), (7, Gen.Constant(KernelSize(request))))
        from bytes in Gen.Frequency((1, Gen.Choose(0, 255).Select(b => (byte)b)), (6, Gen.Constant((byte)0))).ArrayOf(length)
        from sizeMode in Gen.Frequency((2, Gen.Constant(0)), (7, Gen.Constant(1)), (1, Gen.Constant(2)))
        from patchCount in Gen.Choose(0, 6)
        from patches in (from offset in Gen.Elements(4, 8, 12, 16, 20, 24, 28, 32, 40, 64) from value in Gen.Elements(PatchValues) select (offset, value)).ArrayOf(patchCount)
        select new FuzzIoctl(request, [.. bytes], sizeMode, [.. patches]);

    /// <summary>The kernel struct size of a request (72 for anything unknown).</summary>
    private static int KernelSize(uint request) => request switch
    {
        IommufdRequest.Destroy => 8,
        IommufdRequest.IoasAlloc => 12,
        IommufdRequest.HwptAlloc => 48,
        IommufdRequest.HwptInvalidate => 32,
        IommufdRequest.ViommuAlloc => 40,
        IommufdRequest.VdeviceAlloc => 24,
        _ => 72,
    };

    private static int MinimumSize(uint request) => request switch
    {
        IommufdRequest.Destroy => 8,
        IommufdRequest.IoasAlloc => 12,
        IommufdRequest.HwptInvalidate => 32,
        IommufdRequest.TestCmd => 68,
        _ => 24,
    };

    private static string? Run(bool hwError, FuzzIoctl[] calls, byte[] scratch)
    {
        var plan = new FaultPlan { TimeoutPerMillion = 200_000, CompletionErrorPerMillion = 200_000, Seed = 7 };
        using var t = new Topology(hwError ? VtdErrorReporting.PerEntryHwError : VtdErrorReporting.Mainline, plan, capacity: 64);
        ulong scratchAddress = t.Memory.Map(scratch);
        Populate(t);
        for (int i = 0; i < calls.Length; i++)
        {
            FuzzIoctl call = calls[i];
            byte[] arg = [.. call.Bytes];
            if (call.SizeMode != 0 && arg.Length >= 4)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(arg, (uint)(call.SizeMode == 1 ? KernelSize(call.Request) : MinimumSize(call.Request)));
            }

            foreach ((int offset, int value) in call.Patches)
            {
                if (value == -1 && offset + 8 <= arg.Length)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(offset), scratchAddress + (ulong)(offset % 16));
                }
                else if (offset + 4 <= arg.Length)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(offset), (uint)value);
                }
            }

            byte[] argBefore = [.. arg];
            byte[] scratchBefore = [.. scratch];
            string tableBefore = t.Fd.DescribeTable();
            string cachesBefore = Caches(t);
            int rc = t.Fd.Ioctl(call.Request, arg);
            string where = $"call #{i} {call}: rc {Errno.Name(rc)}";
            if (Array.IndexOf(KnownErrnos, rc) < 0)
            {
                return $"{where}: not an errno the commands answer with";
            }

            if (t.Fd.CheckReferenceCounts() is { } refs)
            {
                return $"{where}: {refs}";
            }

            bool invalidate = call.Request == IommufdRequest.HwptInvalidate && arg.Length >= 32 && BinaryPrimitives.ReadUInt32LittleEndian(argBefore) >= 32;
            if (!invalidate && Caches(t) != cachesBefore)
            {
                return $"{where}: the caches changed";
            }

            if (rc == 0)
            {
                continue;
            }

            if (t.Fd.DescribeTable() != tableBefore && !invalidate)
            {
                return $"{where}: the object table changed:\n{tableBefore}\n---\n{t.Fd.DescribeTable()}";
            }

            uint handled = invalidate ? BinaryPrimitives.ReadUInt32LittleEndian(arg.AsSpan(24)) : 0;
            for (int b = 0; b < arg.Length; b++)
            {
                if (arg[b] != argBefore[b] && !(invalidate && b is >= 24 and < 28))
                {
                    return $"{where}: argument byte {b} changed";
                }
            }

            bool mayHaveRun = invalidate && rc != -Errno.ENOMEM && handled != 0; // ENOMEM echoes entry_num: nothing ran
            if (!mayHaveRun && (Caches(t) != cachesBefore || t.Fd.DescribeTable() != tableBefore))
            {
                return $"{where}: a call that handled nothing changed state";
            }

            if (!mayHaveRun && !scratch.AsSpan().SequenceEqual(scratchBefore))
            {
                return $"{where}: a call that handled nothing wrote user memory";
            }
        }

        return null;
    }

    /// <summary>Some cached state for the calls to (not) change.</summary>
    private static void Populate(Topology t)
    {
        for (ulong p = 0; p < 8; p++)
        {
            t.VtdEngine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, t.DidA, 0, p << 12, p << 12));
            t.VtdEngine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, t.DidB, 0, p << 12, p << 12));
            t.VtdEngine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, p << 12, p << 12));
            t.SmmuEngine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, t.Vmid, 1, p << 12, p << 12));
            t.SmmuEngine.DeviceTlb.Fill(new DeviceTlbEntry(0x100, AddressSpace.None, p << 12, p << 12));
            t.SmmuEngine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.ContextDescriptor, 0x100, (uint)p, t.Vmid, p));
        }
    }

    /// <summary>A digest of every cache's contents (order-independent sums of the entries' hashes, counts, device-TLB
    /// ordinals): equal digests for equal contents, and any removal or addition changes it in practice.</summary>
    private static string Caches(Topology t)
    {
        static long Sum<T>(T[] entries) where T : struct
        {
            long sum = entries.Length;
            foreach (T e in entries)
            {
                sum += (e.GetHashCode() * 0x9E37_79B9L) ^ 0x5555;
            }

            return sum;
        }

        InvalidationEngine vtd = t.VtdEngine, smmu = t.SmmuEngine;
        return $"{Sum(vtd.Iotlb.ToArray())}/{Sum(vtd.DeviceTlb.ToArray())}/{vtd.DeviceTlbInvalidations}/{Sum(smmu.Iotlb.ToArray())}/" +
               $"{Sum(smmu.DeviceTlb.ToArray())}/{Sum(smmu.ConfigCache.ToArray())}/{smmu.DeviceTlbInvalidations}";
    }
}

