using System.Buffers.Binary;

using FastInval.Reference;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Uapi;

/// <summary>
/// <see cref="Iommufd"/> against <see cref="ReferenceIommufd"/> (its own copy rules and decoders over
/// <see cref="ReferenceEngine"/>s) on random, mostly well-formed IOMMU_HWPT_INVALIDATE calls of every data type, with
/// random cache fills and fault plans in both reporting modes: the errno, the header written back (entry_num), the
/// array afterwards (hw_error), every cache and every mock slot must be equal after every call.
/// </summary>
[Collection(HeavyPropertyCollection.Name)]
public class InvalidateDifferentialProperties
{
#if FSCHECK_SOAK
    private const int Cases = 200_000;
#else
    private const int Cases = 10_000;
#endif

    [Property(MaxTest = Cases)]
    public Property HwptInvalidate_RandomArraysEveryDataType_SameAsReference() =>
        Prop.ForAll(InvalidateGenerators.Cases(), c =>
        {
            string? why;
            try
            {
                why = Run(c);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "agree");
        });

    /// <summary>Runs a case on both sides; null when they agree throughout, else the first difference.</summary>
    internal static string? Run(InvalidateCase c)
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
        int mapped = call.Pointer == PointerKind.Truncated ? Math.Max(0, fastArray.Length - call.Truncate) : fastArray.Length;
        ulong address = t.Memory.Map(fastArray.AsMemory(0, mapped));
        memory.Map(address, refArray, mapped);
        ulong uptr = call.Pointer switch
        {
            PointerKind.Null => 0,
            PointerKind.Unmapped => address + (((ulong)mapped + 4095) & ~4095UL) + 8,
            PointerKind.Offset => address + 8,
            _ => address,
        };

        byte[] header = new byte[40];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)call.Size);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), targets[call.Target]);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), uptr);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), call.Type);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), call.EntryLen);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(24), call.EntryNum);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(28), call.Reserved);
        header[32] = call.TailByte;
        byte[] fastArg = header[..call.ArgLength];
        byte[] refArg = header[..call.ArgLength];

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
            : Slots(t.Fd.MockSlots(t.MockNested), ((MockNestedTarget)r.Objects[t.MockNested]).Iotlb, "mock IOTLB")
              ?? Slots(t.Fd.MockSlots(t.MockNested2), ((MockNestedTarget)r.Objects[t.MockNested2]).Iotlb, "mock IOTLB (vIOMMU)")
              ?? Slots(t.Fd.MockSlots(t.MockDevice), ((MockViommuTarget)r.Objects[t.MockViommu]).DeviceCaches[Topology.MockVirtualId], "mock device cache");
    }

    private static string? Slots(uint[]? fast, uint[] reference, string what) =>
        fast is not null && fast.AsSpan().SequenceEqual(reference)
            ? null
            : $"{what}: fast [{string.Join(',', fast ?? [])}], reference [{string.Join(',', reference)}]";
}
