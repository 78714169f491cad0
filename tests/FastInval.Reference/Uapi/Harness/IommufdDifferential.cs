using System.Buffers.Binary;
using System.Collections.Immutable;
using FastInval.Reference.Scenarios;
using FastInval.Uapi;

namespace FastInval.Reference.Uapi;

/// <summary>Where a generated array's <c>data_uptr</c> points.</summary>
public enum PointerKind
{
    /// <summary>At the mapped array.</summary>
    Mapped,

    /// <summary>NULL.</summary>
    Null,

    /// <summary>Into the unmapped page after the array.</summary>
    Unmapped,

    /// <summary>8 bytes into the array.</summary>
    Offset,

    /// <summary>At the array, but only part of it is mapped.</summary>
    Truncated,
}

/// <summary>One IOMMU_HWPT_INVALIDATE call: header fields, how the header is framed, and the raw array.</summary>
public sealed record InvalidateCall(int Target, uint Type, uint EntryLen, uint EntryNum, PointerKind Pointer, int Size,
    byte TailByte, int ArgLength, uint Reserved, ImmutableArray<byte> Array, int Truncate)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"call target#{Target} type=0x{Type:x} len={EntryLen} num={EntryNum} ptr={Pointer} size={Size} tail=0x{TailByte:x2} " +
        $"arg={ArgLength} reserved={Reserved} truncate={Truncate} array=[{Convert.ToHexString(Array.AsSpan())}]";
}

/// <summary>A cache fill done on both sides before a call (engine 0 = VT-d, 1 = SMMUv3).</summary>
public sealed record Fill(int Engine, int Kind, ushort Domain, uint AddressSpace, uint Sid, ulong Page, bool Global)
{
    /// <inheritdoc/>
    public override string ToString() => $"fill e{Engine} k{Kind} dom={Domain} as={AddressSpace} sid=0x{Sid:x} page=0x{Page:x} g={Global}";
}

/// <summary>A differential case: the reporting mode, a fault plan, and fills and calls in order.</summary>
public sealed record InvalidateCase(bool HwError, ImmutableArray<ulong> Timeouts, ImmutableArray<ulong> CompletionErrors,
    ImmutableArray<object> Steps)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"hwError={HwError} timeouts=[{string.Join(',', Timeouts)}] ice=[{string.Join(',', CompletionErrors)}]\n  " +
        string.Join("\n  ", Steps);
}

/// <summary>
/// Runs an <see cref="InvalidateCase"/> on <see cref="Iommufd"/> and on <see cref="ReferenceIommufd"/> side by side (the
/// harness of the iommufd differential property and of the <c>IommufdInvalidate</c> fuzz target) and reports the first
/// difference: errno, header written back, the array afterwards, every cache and every mock slot, after every call.
/// </summary>
public static class IommufdDifferential
{
    /// <summary>Runs a case on both sides; null when they agree throughout, else the first difference.</summary>
    public static string? Run(InvalidateCase c)
    {
        var plan = new FaultPlan { TimeoutOrdinals = c.Timeouts, CompletionErrorOrdinals = c.CompletionErrors };
        using var t = new Topology(c.HwError ? VtdErrorReporting.PerEntryHwError : VtdErrorReporting.Mainline, plan);
        var memory = new ReferenceUserMemory();
        ReferenceIommufd r = t.Reference(memory, plan, c.HwError);
        uint[] targets = t.Targets;
        for (int i = 0; i < c.Steps.Length; i++)
        {
            string? why = c.Steps[i] switch
            {
                Fill f => ApplyFill(t, r, f),
                InvalidateCall call => Call(t, r, memory, targets, call),
                _ => "unknown step",
            };
            if (why is not null)
            {
                return $"step #{i} {c.Steps[i]}:\n  {why}";
            }
        }

        return null;
    }

    private static string? ApplyFill(Topology t, ReferenceIommufd r, Fill f)
    {
        ulong address = f.Page << 12;
        FillResult fast, reference;
        if (f.Engine == 0)
        {
            InvalidationEngine e = t.VtdEngine;
            switch (f.Kind)
            {
                case 0:
                case 2:
                {
                    TranslationEntry entry = f.Kind == 0
                        ? TranslationEntry.Leaf(f.Global ? TranslationStage.Stage1 : TranslationStage.Nested, f.Domain, f.AddressSpace, address, address + 0x10_0000, global: f.Global)
                        : TranslationEntry.Leaf(TranslationStage.Nested, f.Domain, f.AddressSpace, 0x20_0000 * (f.Page % 2), 0x4000_0000, sizeLog2: 21);
                    fast = e.Iotlb.Fill(entry);
                    reference = r.Vtd.FillIotlb(entry);
                    break;
                }

                case 1:
                {
                    var entry = new DeviceTlbEntry(f.Sid, f.Global ? 3u : AddressSpace.None, address, address + 0x10_0000);
                    fast = e.DeviceTlb.Fill(entry);
                    reference = r.Vtd.FillDeviceTlb(entry);
                    break;
                }

                default:
                {
                    TranslationEntry entry = TranslationEntry.Table(TranslationStage.Nested, f.Domain, f.AddressSpace, 0, 0x7000_0000, spanLog2: 21);
                    fast = e.Iotlb.Fill(entry);
                    reference = r.Vtd.FillIotlb(entry);
                    break;
                }
            }
        }
        else
        {
            InvalidationEngine e = t.SmmuEngine;
            switch (f.Kind)
            {
                case 0:
                case 3:
                {
                    TranslationEntry entry = f.Kind == 0
                        ? TranslationEntry.Leaf(TranslationStage.Stage1, f.Domain, f.AddressSpace, address, address + 0x10_0000, global: f.Global)
                        : TranslationEntry.Table(TranslationStage.Stage1, f.Domain, f.AddressSpace, 0, 0x7000_0000, spanLog2: 21);
                    fast = e.Iotlb.Fill(entry);
                    reference = r.Smmu.FillIotlb(entry);
                    break;
                }

                case 1:
                {
                    var entry = new DeviceTlbEntry(f.Sid, f.Global ? f.AddressSpace : AddressSpace.None, address, address + 0x10_0000);
                    fast = e.DeviceTlb.Fill(entry);
                    reference = r.Smmu.FillDeviceTlb(entry);
                    break;
                }

                default:
                {
                    var entry = new ConfigEntry(ConfigKinds.ContextDescriptor, f.Sid, f.AddressSpace, f.Domain, f.Page);
                    fast = e.ConfigCache.Fill(entry);
                    reference = r.Smmu.FillConfig(entry);
                    break;
                }
            }
        }

        return fast == reference ? null : $"fill: fast {fast}, reference {reference}";
    }

    private static string? Call(Topology t, ReferenceIommufd r, ReferenceUserMemory memory, uint[] targets, InvalidateCall call)
    {
        byte[] fastArray = [.. call.Array];
        byte[] refArray = [.. call.Array];
        int mapped = MappedLength(call);
        ulong address = t.Memory.Map(fastArray.AsMemory(0, mapped));
        memory.Map(address, refArray, mapped);
        byte[] fastArg = Argument(call, targets[call.Target], address);
        byte[] refArg = [.. fastArg];

        int fastRc = t.Fd.Ioctl(IommufdRequest.HwptInvalidate, fastArg);
        int refRc = r.Invalidate(refArg);
        if (fastRc != refRc)
        {
            return $"errno: fast {Errno.Name(fastRc)}, reference {Errno.Name(refRc)}";
        }

        if (!fastArg.AsSpan().SequenceEqual(refArg))
        {
            return $"header: fast {Convert.ToHexString(fastArg)}, reference {Convert.ToHexString(refArg)}";
        }

        if (!fastArray.AsSpan().SequenceEqual(refArray))
        {
            return $"array: fast {Convert.ToHexString(fastArray)}, reference {Convert.ToHexString(refArray)}";
        }

        return Differential.CompareCaches(t.VtdEngine, r.Vtd) is { } vtd ? "VT-d " + vtd
            : Differential.CompareCaches(t.SmmuEngine, r.Smmu) is { } smmu ? "SMMUv3 " + smmu
            : Slots(t.Fd, MockSelftest.OpMdCheckIotlb, t.MockNested, ((MockNestedTarget)r.Objects[t.MockNested]).Iotlb, "mock IOTLB")
              ?? Slots(t.Fd, MockSelftest.OpMdCheckIotlb, t.MockNested2, ((MockNestedTarget)r.Objects[t.MockNested2]).Iotlb, "mock IOTLB (vIOMMU)")
              ?? Slots(t.Fd, MockSelftest.OpDevCheckCache, t.MockDevice, ((MockViommuTarget)r.Objects[t.MockViommu]).DeviceCaches[Topology.MockVirtualId], "mock device cache");
    }

    /// <summary>How many bytes of the call's array are mapped (all but the last <see cref="InvalidateCall.Truncate"/> for a
    /// truncated pointer).</summary>
    public static int MappedLength(InvalidateCall call) =>
        call.Pointer == PointerKind.Truncated ? Math.Max(0, call.Array.Length - call.Truncate) : call.Array.Length;

    /// <summary>The IOMMU_HWPT_INVALIDATE argument of <paramref name="call"/> on <paramref name="hwptId"/>, its array mapped
    /// at <paramref name="address"/>: the header framed as the call says, data_uptr as its pointer kind says.</summary>
    public static byte[] Argument(InvalidateCall call, uint hwptId, ulong address)
    {
        ulong uptr = call.Pointer switch
        {
            PointerKind.Null => 0,
            PointerKind.Unmapped => address + (((ulong)MappedLength(call) + 4095) & ~4095UL) + 8,
            PointerKind.Offset => address + 8,
            _ => address,
        };

        byte[] header = new byte[40];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)call.Size);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), hwptId);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), uptr);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), call.Type);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), call.EntryLen);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(24), call.EntryNum);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(28), call.Reserved);
        header[32] = call.TailByte;
        return header[..call.ArgLength];
    }

    /// <summary>Compares the 4 slots of a mock object with the reference's through the public IOMMU_TEST_CMD check op
    /// (MD_CHECK_IOTLB on a nested HWPT, DEV_CHECK_CACHE on a device), which answers 0 only for an equal value.</summary>
    private static string? Slots(Iommufd fd, uint op, uint id, uint[] reference, string what)
    {
        for (uint slot = 0; slot < reference.Length; slot++)
        {
            byte[] cmd = Ufd.Struct(72, (4, op), (8, id), (16, slot), (20, reference[slot]));
            int rc = fd.Ioctl(IommufdRequest.TestCmd, cmd);
            if (rc != 0)
            {
                return $"{what}: slot {slot} is not the reference's 0x{reference[slot]:x} (check op answered {rc})";
            }
        }

        return null;
    }
}
