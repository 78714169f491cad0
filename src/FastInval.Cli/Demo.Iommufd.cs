using System.Buffers.Binary;
using FastInval.Uapi;

namespace FastInval.Cli;

internal static partial class Demo
{
    // A second guest, vm2, with a passthrough NIC behind a VT-d unit: its VMM forwards the guest's invalidations to
    // iommufd (here FastInval's in-process /dev/iommu) as IOMMU_HWPT_INVALIDATE arrays of struct
    // iommu_hwpt_vtd_s1_invalidate { __aligned_u64 addr; __aligned_u64 npages; __u32 flags; __u32 __reserved; }.
    private const uint PassthroughSid = 0x0400;
    private const int PassthroughPages = 64;
    private const int VtdEntryBytes = 24;

    /// <summary>One screen: an IOMMU_HWPT_INVALIDATE array whose middle entry is bad; the errno, entry_num and the
    /// caches show that the entries before it were applied and the ones after it were not.</summary>
    private static void RunIommufdStep(TextWriter o, SelfChecks checks, int step)
    {
        o.WriteLine();
        o.WriteLine($"Step {step}. vm2's VMM forwards a guest unmap to iommufd as IOMMU_HWPT_INVALIDATE; one entry is bad.");
        var memory = new UserMemory();
        using var fd = new Iommufd(memory, new IommufdOptions
        {
            EngineOptions = new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 256, ConfigCacheCapacity = 64 },
        });

        // The VFIO side: a passthrough NIC with ATS; then the ioctls a VMM issues for nested translation.
        uint device = fd.AddDevice(IommuKind.IntelVtd, PassthroughSid, ats: true);
        byte[] ioasAlloc = Struct(12);
        int rc = fd.Ioctl(IommufdRequest.IoasAlloc, ioasAlloc);
        uint ioas = U32(ioasAlloc, 8);
        rc |= HwptAlloc(fd, device, ioas, (uint)HwptAllocFlags.NestParent, HwptDataType.None, 0, 0, out uint parent);
        byte[] s1 = new byte[24];                                     // struct iommu_hwpt_vtd_s1: flags, pgtbl_addr, addr_width
        BinaryPrimitives.WriteUInt64LittleEndian(s1.AsSpan(8), 0x1000_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(s1.AsSpan(16), 48);
        rc |= HwptAlloc(fd, device, parent, 0, HwptDataType.VtdS1, memory.Map(s1), (uint)s1.Length, out uint nested);
        rc |= fd.AttachDevice(device, nested);
        checks.Check(rc == 0 && fd.TryGetDomainId(nested, out _), "IOAS_ALLOC, HWPT_ALLOC (parent, VT-d S1 nested) and attach succeeded");
        fd.TryGetDomainId(nested, out ushort did);
        o.WriteLine($"  set-up:       IOAS {ioas}, nest-parent HWPT {parent}, VT-d S1 nested HWPT {nested} (DID {did}), NIC {Bdf(PassthroughSid)} attached");

        // What the host caches for vm2: 64 nested pages at 0 in the IOTLB and in the NIC's device TLB.
        InvalidationEngine engine = fd.Engine(IommuKind.IntelVtd);
        for (ulong p = 0; p < PassthroughPages; p++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, did, 0, p * Page, 0x50_0000_0000UL + (p * Page)));
            engine.DeviceTlb.Fill(new DeviceTlbEntry(PassthroughSid, AddressSpace.None, p * Page, 0x50_0000_0000UL + (p * Page)));
        }

        // Three entries: pages 0-15, then one with a flag bit the uAPI does not define, then pages 32-47.
        byte[] entries = new byte[3 * VtdEntryBytes];
        PutEntry(entries, 0, 0x0000, 16, VtdS1Invalidate.FlagLeaf);
        PutEntry(entries, 1, 0x1_0000, 16, 1u << 7);
        PutEntry(entries, 2, 0x2_0000, 16, VtdS1Invalidate.FlagLeaf);
        byte[] invalidate = Struct(32);
        BinaryPrimitives.WriteUInt32LittleEndian(invalidate.AsSpan(4), nested);
        BinaryPrimitives.WriteUInt64LittleEndian(invalidate.AsSpan(8), memory.Map(entries));
        BinaryPrimitives.WriteUInt32LittleEndian(invalidate.AsSpan(16), InvalidateDataType.VtdS1);
        BinaryPrimitives.WriteUInt32LittleEndian(invalidate.AsSpan(20), VtdEntryBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(invalidate.AsSpan(24), 3);
        o.WriteLine("  VMM asked:    IOMMU_HWPT_INVALIDATE, data_type VTD_S1, entry_len 24, entry_num 3:");
        o.WriteLine("                  [0] addr 0x0     npages 16  flags LEAF");
        o.WriteLine("                  [1] addr 0x10000 npages 16  flags 0x80 (no such flag)");
        o.WriteLine("                  [2] addr 0x20000 npages 16  flags LEAF");

        rc = fd.Ioctl(IommufdRequest.HwptInvalidate, invalidate);
        uint handled = U32(invalidate, 24);
        o.WriteLine($"  iommufd said: ioctl returned {rc} ({(rc == -Errno.EOPNOTSUPP ? "-EOPNOTSUPP" : "?")}), entry_num = {handled}: entry [0] was handled, [1] was refused, [2] never ran");
        checks.Check(rc == -Errno.EOPNOTSUPP && handled == 1, $"the bad flag gives -EOPNOTSUPP with entry_num 1 (got {rc}, {handled})");

        bool first = Cached(engine, did, 0x5000);
        bool second = Cached(engine, did, 0x1_5000);
        bool third = Cached(engine, did, 0x2_5000);
        bool firstAtc = engine.DeviceTlb.TryLookup(PassthroughSid, AddressSpace.None, 0x5000, out _);
        bool thirdAtc = engine.DeviceTlb.TryLookup(PassthroughSid, AddressSpace.None, 0x2_5000, out _);
        o.WriteLine($"  lookups:      page 0x5000 (entry [0]): IOTLB {HitWord(first)}, NIC device TLB {HitWord(firstAtc)}");
        o.WriteLine($"                page 0x15000 (entry [1]) and 0x25000 (entry [2]): IOTLB {HitWord(second)} / {HitWord(third)}, NIC device TLB for [2] {HitWord(thirdAtc)}");
        o.WriteLine("  the VMM:      reports the failure for entry [1] to the guest and resubmits from entry [2] on.");
        checks.Check(!first && !firstAtc, "entry [0] was applied to the IOTLB and to the ATS device's TLB");
        checks.Check(second && third && thirdAtc, "entries [1] and [2] were not applied");
    }

    private static bool Cached(InvalidationEngine engine, ushort did, ulong address) =>
        engine.Iotlb.TryLookup(TranslationStage.Nested, did, 0, address, out _);

    private static string HitWord(bool hit) => hit ? "hit" : "miss";

    private static int HwptAlloc(Iommufd fd, uint device, uint pt, uint flags, uint dataType, ulong data, uint dataLen, out uint id)
    {
        // struct iommu_hwpt_alloc: size, flags, dev_id, pt_id, out_hwpt_id, __reserved, data_type, data_len, data_uptr, ...
        byte[] a = Struct(48);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(8), device);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(12), pt);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(24), dataType);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(28), dataLen);
        BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(32), data);
        int rc = fd.Ioctl(IommufdRequest.HwptAlloc, a);
        id = rc == 0 ? U32(a, 16) : 0;
        return rc;
    }

    private static void PutEntry(byte[] entries, int index, ulong addr, ulong npages, uint flags)
    {
        Span<byte> e = entries.AsSpan(index * VtdEntryBytes, VtdEntryBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(e, addr);
        BinaryPrimitives.WriteUInt64LittleEndian(e[8..], npages);
        BinaryPrimitives.WriteUInt32LittleEndian(e[16..], flags);
    }

    /// <summary>A zeroed ioctl argument whose first u32 is its size, as every iommufd struct begins.</summary>
    private static byte[] Struct(int size)
    {
        byte[] a = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(a, (uint)size);
        return a;
    }

    private static uint U32(byte[] a, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(offset));
}
