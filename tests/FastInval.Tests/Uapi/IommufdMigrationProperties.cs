using System.Buffers.Binary;
using System.Collections.Immutable;
using FastInval.Reference.Uapi;
using FastInval.Uapi;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Uapi;

/// <summary>What a step of a random iommufd stream does (see <see cref="UfdStep"/>).</summary>
public enum UfdOp
{
    IoasAlloc,
    AddDevice,
    RemoveDevice,
    AttachDevice,
    DetachDevice,
    HwptAllocPaging,
    HwptAllocVtd,
    HwptAllocSelftest,
    HwptAllocSmmu,
    ViommuAlloc,
    VdeviceAlloc,
    Destroy,
    MockDomain,
    MockDomainReplace,
    CheckIotlb,
    CheckDevCache,
    Invalidate,
    Fill,
    FaultQueueAlloc,
    HwptAllocFault,
    TriggerIopf,
    ReadFaults,
    RespondFault,
    CloseFault,
}

/// <summary>One step: an op with up to three operands (ids, flags, variants), an IOMMU_HWPT_INVALIDATE call for
/// <see cref="UfdOp.Invalidate"/> (its target is <see cref="A"/>).</summary>
public sealed record UfdStep(UfdOp Op, uint A, uint B, uint C, InvalidateCall? Call)
{
    /// <inheritdoc/>
    public override string ToString() => Call is null ? $"{Op}({A}, {B}, 0x{C:x})" : $"{Op}({A}) {Call}";
}

/// <summary>A migration case: the reporting mode, the dead devices of the fault plan, the steps and where to cut.</summary>
public sealed record UfdMigrationCase(bool HwError, ImmutableArray<uint> DeadDevices, ImmutableArray<UfdStep> Steps, int Cut)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"hwError={HwError} dead=[{string.Join(',', DeadDevices.Select(d => $"0x{d:x}"))}] cut={Cut}\n  " + string.Join("\n  ", Steps);
}

/// <summary>
/// Migration of an <see cref="Iommufd"/>: random ioctl streams over the populated <see cref="Topology"/> (IOAS_ALLOC,
/// HWPT_ALLOC paging and nested of every driver, VIOMMU_ALLOC, VDEVICE_ALLOC, DESTROY, device add/attach/detach/remove,
/// the selftest ops, IOMMU_HWPT_INVALIDATE with good and bad entries, cache fills, fault queues: FAULT_QUEUE_ALLOC,
/// HWPT_ALLOC with FAULT_ID_VALID, TRIGGER_IOPF, reads, responses and closes of the fault file) run once without interruption and once
/// saved at a random step, the source disposed, a fresh context over the same user memory restored from the image and
/// refilled with what the source had cached. At the cut the tables and images must be equal; after every later step the
/// errno, the output ids, the argument written back (entry_num), the user array (hw_error), the object table with its
/// mock slots and users counts, and every cache must be the same. Device-TLB failures come from dead devices (a plan
/// that does not depend on the engine's ordinal, which belongs to the engine and restarts with a fresh one).
/// </summary>
[Collection(HeavyPropertyCollection.Name)]
public class IommufdMigrationProperties
{
#if FSCHECK_SOAK
    private const int Cases = 100_000;
#else
    private const int Cases = 10_000;
#endif

    private const int EngineCapacity = 64;

    [Property(MaxTest = Cases)]
    public Property SaveRestoreAtARandomStep_SameRepliesAsAnUninterruptedRun() =>
        Prop.ForAll(MigrationCases(), c =>
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

            return (why is null).Label(why ?? "same");
        });

    private static Gen<uint> Id => Gen.Frequency((9, Gen.Choose(1, 30).Select(x => (uint)x)), (1, Gen.Elements(0u, 31u, 500u)));

    private static Gen<uint> Any(params uint[] values) => Gen.Elements(values);

    private static Gen<UfdStep> Step(bool hwError) =>
        from op in Gen.Frequency(
            (3, Gen.Constant(UfdOp.IoasAlloc)), (3, Gen.Constant(UfdOp.AddDevice)), (2, Gen.Constant(UfdOp.RemoveDevice)),
            (4, Gen.Constant(UfdOp.AttachDevice)), (2, Gen.Constant(UfdOp.DetachDevice)), (3, Gen.Constant(UfdOp.HwptAllocPaging)),
            (3, Gen.Constant(UfdOp.HwptAllocVtd)), (3, Gen.Constant(UfdOp.HwptAllocSelftest)), (3, Gen.Constant(UfdOp.HwptAllocSmmu)),
            (3, Gen.Constant(UfdOp.ViommuAlloc)), (3, Gen.Constant(UfdOp.VdeviceAlloc)), (5, Gen.Constant(UfdOp.Destroy)),
            (3, Gen.Constant(UfdOp.MockDomain)), (2, Gen.Constant(UfdOp.MockDomainReplace)), (2, Gen.Constant(UfdOp.CheckIotlb)),
            (2, Gen.Constant(UfdOp.CheckDevCache)), (12, Gen.Constant(UfdOp.Invalidate)), (6, Gen.Constant(UfdOp.Fill)),
            (4, Gen.Constant(UfdOp.FaultQueueAlloc)), (6, Gen.Constant(UfdOp.HwptAllocFault)), (10, Gen.Constant(UfdOp.TriggerIopf)),
            (5, Gen.Constant(UfdOp.ReadFaults)), (4, Gen.Constant(UfdOp.RespondFault)), (1, Gen.Constant(UfdOp.CloseFault)))
        from a in Id
        from b in Id
        from c in op switch
        {
            UfdOp.IoasAlloc => Gen.Frequency((9, Gen.Constant(0u)), (1, Gen.Constant(1u))),
            UfdOp.AddDevice => Gen.Choose(0, 15).Select(x => (uint)x),
            UfdOp.HwptAllocPaging => Any(0, 1, 1, 2, 3, 4, 0x80),
            UfdOp.HwptAllocVtd or UfdOp.HwptAllocSmmu or UfdOp.MockDomain => Gen.Choose(0, 3).Select(x => (uint)x),
            UfdOp.ViommuAlloc => Any(ViommuType.ArmSmmuV3, ViommuType.Selftest, ViommuType.Default),
            UfdOp.VdeviceAlloc => Any(1, 2, 3, Topology.MockVirtualId),
            UfdOp.HwptAllocSelftest => Any(MockSelftest.IotlbDefault, 7, 0),
            UfdOp.CheckIotlb or UfdOp.CheckDevCache => Any(MockSelftest.IotlbDefault, MockSelftest.DevCacheDefault, 0, 7),
            UfdOp.Fill => Gen.Choose(0, int.MaxValue).Select(x => (uint)x),
            UfdOp.HwptAllocFault => Id,
            UfdOp.TriggerIopf or UfdOp.ReadFaults or UfdOp.RespondFault => Gen.Choose(0, 7).Select(x => (uint)x),
            _ => Gen.Constant(0u),
        }
        from call in op == UfdOp.Invalidate ? InvalidateGenerators.Call(hwError).Select(x => (InvalidateCall?)x) : Gen.Constant<InvalidateCall?>(null)
        select new UfdStep(op, op == UfdOp.AddDevice ? (uint)(a % 2) : a, op is UfdOp.CheckIotlb or UfdOp.CheckDevCache ? b % 5 : b, c, call);

    private static Arbitrary<UfdMigrationCase> MigrationCases() => Arb.From(
        from hwError in Gen.Elements(false, true)
        from dead in Gen.Elements(0x10u, 0x18u, 0x100u, 0x101u).ListOf().Select(l => l.Distinct().Take(2).ToImmutableArray())
        from count in Gen.Choose(1, 30)
        from steps in Step(hwError).ArrayOf(count)
        from cut in Gen.Choose(0, count)
        select new UfdMigrationCase(hwError, dead, [.. steps], cut));

    private static string? Run(UfdMigrationCase c)
    {
        var plan = new FaultPlan { TimeoutSourceIds = c.DeadDevices };
        VtdErrorReporting reporting = c.HwError ? VtdErrorReporting.PerEntryHwError : VtdErrorReporting.Mainline;
        using var straight = new Topology(reporting, plan, EngineCapacity);
        var source = new Topology(reporting, plan, EngineCapacity);
        Iommufd a = straight.Fd, b = source.Fd;
        for (int i = 0; i < c.Cut; i++)
        {
            string x = Apply(a, straight.Memory, straight.Targets, c.Steps[i]), y = Apply(b, source.Memory, source.Targets, c.Steps[i]);
            if (x != y)
            {
                return $"step #{i} {c.Steps[i]} before the cut: {x} / {y}";
            }
        }

        byte[] image = Save(b);
        TranslationEntry[][] iotlb = [b.Engine(IommuKind.IntelVtd).Iotlb.ToArray(), b.Engine(IommuKind.ArmSmmuV3).Iotlb.ToArray()];
        DeviceTlbEntry[][] deviceTlb = [b.Engine(IommuKind.IntelVtd).DeviceTlb.ToArray(), b.Engine(IommuKind.ArmSmmuV3).DeviceTlb.ToArray()];
        ConfigEntry[][] config = [b.Engine(IommuKind.IntelVtd).ConfigCache.ToArray(), b.Engine(IommuKind.ArmSmmuV3).ConfigCache.ToArray()];
        IommufdOptions options = b.Options;
        source.Dispose();
        using var restored = new Iommufd(source.Memory, options);
        restored.RestoreState(image);
        for (int k = 0; k < 2; k++)
        {
            InvalidationEngine e = restored.Engine((IommuKind)k);
            foreach (TranslationEntry t in iotlb[k])
            {
                e.Iotlb.Fill(in t);
            }

            foreach (DeviceTlbEntry t in deviceTlb[k])
            {
                e.DeviceTlb.Fill(in t);
            }

            foreach (ConfigEntry t in config[k])
            {
                e.ConfigCache.Fill(in t);
            }
        }

        if (!Save(a).AsSpan().SequenceEqual(image) || !Save(restored).AsSpan().SequenceEqual(image))
        {
            return $"at the cut ({c.Cut}): the images differ (uninterrupted, source, restored)";
        }

        string? why = Compare(a, restored);
        if (why is not null)
        {
            return $"right after the restore (cut {c.Cut}): {why}";
        }

        for (int i = c.Cut; i < c.Steps.Length; i++)
        {
            string x = Apply(a, straight.Memory, straight.Targets, c.Steps[i]);
            string y = Apply(restored, source.Memory, source.Targets, c.Steps[i]);
            why = x != y ? $"replies: uninterrupted {x}, migrated {y}" : Compare(a, restored);
            if (why is not null)
            {
                return $"step #{i} {c.Steps[i]} (cut {c.Cut}): {why}";
            }
        }

        return null;
    }

    private static byte[] Save(Iommufd fd)
    {
        var image = new byte[fd.StateSize];
        int n = fd.SaveState(image);
        return n == image.Length ? image : throw new InvalidOperationException($"SaveState wrote {n} of {image.Length} bytes");
    }

    /// <summary>Runs one step and describes everything it answered: errno, output ids, the argument and array written back.</summary>
    private static string Apply(Iommufd fd, UserMemory memory, uint[] targets, UfdStep s)
    {
        var u = new Ufd(fd, memory);
        switch (s.Op)
        {
            case UfdOp.IoasAlloc:
                return $"{u.IoasAlloc(out uint ioas, s.C)} {ioas}";
            case UfdOp.AddDevice:
                try
                {
                    uint sid = (s.C & 3) switch { 0 => 0x10u, 1 => 0x18u, 2 => 0x100u, _ => 0x101u };
                    return $"{fd.AddDevice((IommuKind)s.A, sid, ats: (s.C & 4) == 0)}";
                }
                catch (ArgumentException ex)
                {
                    return ex.GetType().Name;
                }

            case UfdOp.RemoveDevice:
                return $"{fd.RemoveDevice(s.A)}";
            case UfdOp.AttachDevice:
                return $"{fd.AttachDevice(s.A, s.B)}";
            case UfdOp.DetachDevice:
                return $"{fd.DetachDevice(s.A)}";
            case UfdOp.HwptAllocPaging:
                return $"{u.HwptAlloc(s.A, s.B, s.C, out uint paging)} {paging}";
            case UfdOp.HwptAllocVtd:
                return $"{u.HwptAllocVtd(s.A, s.B, out uint vtd, addressWidth: s.C == 1 ? 57u : s.C == 2 ? 39u : 48u, dataLen: s.C == 3 ? 16u : 24u)} {vtd}";
            case UfdOp.HwptAllocSelftest:
                return $"{u.HwptAllocSelftest(s.A, s.B, 0, out uint mock, iotlb: s.C)} {mock}";
            case UfdOp.HwptAllocSmmu:
            {
                byte[] ste = new byte[16];
                ulong w0 = s.C switch { 0 => 1 | (4 << 1), 1 => 0, 2 => 1 | (5 << 1) | (0x1234UL << 6), _ => 1 | (6 << 1) };
                BinaryPrimitives.WriteUInt64LittleEndian(ste, w0);
                BinaryPrimitives.WriteUInt64LittleEndian(ste.AsSpan(8), s.C == 2 ? 1UL << 28 : 0);
                return $"{u.HwptAlloc(s.A, s.B, 0, out uint nested, HwptDataType.ArmSmmuV3, memory.Map(ste), 16)} {nested}";
            }

            case UfdOp.ViommuAlloc:
                return $"{u.ViommuAlloc(s.A, s.B, s.C, out uint viommu)} {viommu}";
            case UfdOp.VdeviceAlloc:
                return $"{u.VdeviceAlloc(s.A, s.B, s.C, out uint vdevice)} {vdevice}";
            case UfdOp.Destroy:
                return $"{u.Destroy(s.A)}";
            case UfdOp.MockDomain:
                return $"{u.MockDomain(s.A, out uint stdev, out uint hwpt, out uint idev, s.C switch { 0 => null, 1 => 0u, 2 => MockSelftest.DeviceNoDirty, _ => 0x80u })} {stdev} {hwpt} {idev}";
            case UfdOp.MockDomainReplace:
                return $"{u.MockDomainReplace(s.A, s.B, out uint attached)} {attached}";
            case UfdOp.CheckIotlb:
                return $"{u.CheckIotlb(s.A, s.B, s.C)}";
            case UfdOp.CheckDevCache:
                return $"{u.CheckDevCache(s.A, s.B, s.C)}";
            case UfdOp.Invalidate:
            {
                InvalidateCall call = s.Call!;
                byte[] array = [.. call.Array];
                ulong address = memory.Map(array.AsMemory(0, IommufdDifferential.MappedLength(call)));
                uint target = s.A % 3 == 0 ? s.A : targets[call.Target]; // mostly the topology's targets, else any id
                byte[] arg = IommufdDifferential.Argument(call, target, address);
                int rc = fd.Ioctl(IommufdRequest.HwptInvalidate, arg);
                return $"{rc} [{Convert.ToHexString(arg)}] [{Convert.ToHexString(array)}]";
            }

            case UfdOp.FaultQueueAlloc:
            {
                byte[] arg = Ufd.Struct(16);
                int rc = u.Ioctl(FaultQueueAllocRequest, arg);
                return $"{rc} {Ufd.U32(arg, 8)} {(int)Ufd.U32(arg, 12) > 2}"; // the descriptor's number is the process's
            }

            case UfdOp.HwptAllocFault:
            {
                // Mostly a live device, pt and fault object (else the raw ids): a paging HWPT on an IOAS, or a selftest
                // nested HWPT on a nest parent or vIOMMU, with FAULT_ID_VALID; then the device (host-bound: AttachDevice;
                // a mock one: MOCK_DOMAIN_REPLACE of a selftest object) is attached to it.
                uint dev = Pick(fd, s.A, IommufdObjectType.Device);
                uint pt = Pick(fd, s.B, IommufdObjectType.Ioas, IommufdObjectType.HwptPaging, IommufdObjectType.Viommu);
                uint fault = Pick(fd, s.C, IommufdObjectType.Fault);
                fd.TryGetObjectType(pt, out IommufdObjectType ptType);
                uint iopf;
                int rc = ptType == IommufdObjectType.Ioas
                    ? u.HwptAlloc(dev, pt, (uint)HwptAllocFlags.FaultIdValid, out iopf, faultId: fault)
                    : u.HwptAllocSelftest(dev, pt, (uint)HwptAllocFlags.FaultIdValid, out iopf, faultId: fault);
                return rc != 0 ? $"{rc}" : $"0 {iopf} {fd.AttachDevice(dev, iopf)} {u.MockDomainReplace(Pick(fd, s.A, IommufdObjectType.Selftest), iopf)}";
            }

            case UfdOp.TriggerIopf:
            {
                uint dev = Pick(fd, s.A, IommufdObjectType.Device);
                byte[] cmd = Ufd.Struct(72, (4, MockSelftest.OpTriggerIopf), (16, dev), (20, s.C % 4 == 3 ? 5u : 0u), (24, s.B), (28, s.C));
                Ufd.Put64(cmd, 32, (ulong)s.B << 12);
                return $"{u.Ioctl(IommufdRequest.TestCmd, cmd)}";
            }

            case UfdOp.ReadFaults:
            {
                uint fault = Pick(fd, s.A, IommufdObjectType.Fault);
                byte[] records = new byte[Iommufd.PageFaultRecordSize * (s.C % 3)];
                long rc = fd.ReadFaults(fault, records);
                return $"{rc} [{Convert.ToHexString(records)}] {Counts(fd, fault)}";
            }

            case UfdOp.RespondFault:
            {
                byte[] response = new byte[Iommufd.PageResponseSize];
                BinaryPrimitives.WriteUInt32LittleEndian(response, s.B % 5);
                BinaryPrimitives.WriteUInt32LittleEndian(response.AsSpan(4), s.C % 3);
                uint fault = Pick(fd, s.A, IommufdObjectType.Fault);
                return $"{fd.WriteFaultResponses(fault, response)} {Counts(fd, fault)}";
            }

            case UfdOp.CloseFault:
            {
                uint fault = Pick(fd, s.A, IommufdObjectType.Fault);
                return $"{fd.CloseFaultFile(fault)} {fd.FaultDescriptor(fault) >= 0} {Counts(fd, fault)}";
            }

            default:
                Fill(fd, s.C);
                return "fill";
        }
    }

    private const uint FaultQueueAllocRequest = 0x3B8E;

    /// <summary>For three <paramref name="operand"/>s in four, a live object of one of <paramref name="types"/> (the
    /// operand picks which, in id order), when there is one; else the operand itself, as an id.</summary>
    private static uint Pick(Iommufd fd, uint operand, params IommufdObjectType[] types)
    {
        if (operand % 4 == 0)
        {
            return operand;
        }

        var ids = new List<uint>();
        for (uint id = 1; id < 64; id++)
        {
            if (fd.TryGetObjectType(id, out IommufdObjectType t) && Array.IndexOf(types, t) >= 0)
            {
                ids.Add(id);
            }
        }

        return ids.Count == 0 ? operand : ids[(int)(operand % (uint)ids.Count)];
    }

    private static string Counts(Iommufd fd, uint faultId) =>
        fd.TryGetFaultCounts(faultId, out int queued, out int awaiting) ? $"{queued}/{awaiting}" : "-";

    /// <summary>A cache entry near what the topology's domains and devices invalidate: VT-d nested IOTLB (DIDs 2–5) or
    /// device TLB (0x10, 0x18, 0x20), SMMUv3 stage-1 IOTLB (VMIDs 1–2, ASIDs 1–2), device TLB (0x100, 0x101) or CD.</summary>
    private static void Fill(Iommufd fd, uint seed)
    {
        ulong page = (seed >> 4) % 32 << 12;
        ushort domain = (ushort)(((seed >> 9) % 4) + 2);
        uint sid = ((seed >> 11) % 3) switch { 0 => 0x10u, 1 => 0x18u, _ => 0x20u };
        InvalidationEngine vtd = fd.Engine(IommuKind.IntelVtd), smmu = fd.Engine(IommuKind.ArmSmmuV3);
        switch (seed % 5)
        {
            case 0:
                vtd.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, domain, 0, page, page + 0x10_0000));
                break;
            case 1:
                vtd.DeviceTlb.Fill(new DeviceTlbEntry(sid, AddressSpace.None, page, page + 0x10_0000));
                break;
            case 2:
                smmu.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(domain % 2 + 1), (seed >> 13) % 2 + 1, page, page + 0x10_0000));
                break;
            case 3:
                smmu.DeviceTlb.Fill(new DeviceTlbEntry(0x100 + ((seed >> 11) % 2), AddressSpace.None, page, page + 0x10_0000));
                break;
            default:
                smmu.ConfigCache.Fill(new ConfigEntry(ConfigKinds.ContextDescriptor, 0x100 + ((seed >> 11) % 2), (seed >> 13) % 2, (ushort)(domain % 2 + 1), page));
                break;
        }
    }

    private static string? Compare(Iommufd a, Iommufd b)
    {
        string x = a.DescribeTable(), y = b.DescribeTable();
        if (x != y)
        {
            return $"object tables:\n{x}\n---\n{y}";
        }

        if (b.CheckReferenceCounts() is { } refs)
        {
            return "migrated: " + refs;
        }

        if (!Save(a).AsSpan().SequenceEqual(Save(b)))
        {
            return "the state images differ (attach or creation order, a field the table does not print)";
        }

        for (int k = 0; k < 2; k++)
        {
            InvalidationEngine e = a.Engine((IommuKind)k), f = b.Engine((IommuKind)k);
            string? why = SameSet(e.Iotlb.ToArray(), f.Iotlb.ToArray(), "IOTLB") ?? SameSet(e.DeviceTlb.ToArray(), f.DeviceTlb.ToArray(), "device TLB")
                          ?? SameSet(e.ConfigCache.ToArray(), f.ConfigCache.ToArray(), "configuration cache");
            if (why is not null)
            {
                return $"{(IommuKind)k} {why}";
            }
        }

        return null;
    }

    private static string? SameSet<T>(T[] x, T[] y, string what) where T : IEquatable<T> =>
        x.Length == y.Length && x.ToHashSet().SetEquals(y) ? null
            : $"{what}: uninterrupted [{string.Join(", ", x)}], migrated [{string.Join(", ", y)}]";
}
