using System.Buffers.Binary;
using FastInval.Tests.Docs;
using FastInval.Tests.Uapi;
using FastInval.Tests.Vtd;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Tests.Notifiers;

// <docs:notifier-forwarder>
/// <summary>
/// Forwards a guest's first-stage IOTLB invalidations (what its VT-d queue executed) to IOMMU_HWPT_INVALIDATE on the
/// nested VT-d S1 HWPT of a passthrough device, whose IOTLB entries are the guest's stage 1 on PASID 0. Subscribe it
/// with a filter for the guest domain, PASID 0 and the IOTLB. Allocation-free: its buffers are made once.
/// </summary>
public sealed class NestedHwptForwarder : IInvalidationNotifier
{
    private const int EntrySize = VtdS1Invalidate.EntrySize;   // struct iommu_hwpt_vtd_s1_invalidate
    private readonly Iommufd _fd;
    private readonly uint _hwptId;
    private readonly byte[] _entries;                          // the request array, in the iommufd's user memory
    private readonly ulong _entriesAddress;
    private readonly byte[] _header = new byte[32];            // struct iommu_hwpt_invalidate

    public NestedHwptForwarder(Iommufd fd, uint nestedHwptId, int capacity = 64)
    {
        _fd = fd;
        _hwptId = nestedHwptId;
        _entries = new byte[capacity * EntrySize];
        _entriesAddress = fd.Memory.Map(_entries);
    }

    /// <summary>Entries forwarded, and ioctls that failed (the host must then flush the HWPT itself).</summary>
    public long Forwarded { get; private set; }

    public long Failures { get; private set; }

    public void OnInvalidated(ReadOnlySpan<InvalidationRecord> records)
    {
        int n = 0;
        foreach (ref readonly InvalidationRecord r in records)
        {
            InvalidationDescriptor d = r.Descriptor;
            if ((d.Stages & StageMask.FirstStage) == 0)
            {
                continue;                                      // the guest's stage 2: not in a nested S1 HWPT
            }

            ulong addr = 0, npages = ulong.MaxValue;           // all of PASID 0
            if (d.Scope == InvalidationScope.IotlbRange && !(d.First == 0 && d.Last == ulong.MaxValue))
            {
                addr = d.First;                                // a 2^AM-page block: 4 KiB aligned
                npages = (d.Last - d.First + 1) / 4096;
            }

            Span<byte> e = _entries.AsSpan(n * EntrySize, EntrySize);
            BinaryPrimitives.WriteUInt64LittleEndian(e, addr);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], npages);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], r.LeafOnly ? VtdS1Invalidate.FlagLeaf : 0);
            BinaryPrimitives.WriteUInt32LittleEndian(e[20..], 0);
            if (++n == _entries.Length / EntrySize)
            {
                Flush(n);
                n = 0;
            }
        }

        if (n != 0)
        {
            Flush(n);
        }
    }

    private void Flush(int n)
    {
        Span<byte> h = _header;
        BinaryPrimitives.WriteUInt32LittleEndian(h, 32);                              // size
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], _hwptId);                    // hwpt_id
        BinaryPrimitives.WriteUInt64LittleEndian(h[8..], _entriesAddress);            // data_uptr
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], InvalidateDataType.VtdS1);  // data_type
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], EntrySize);                 // entry_len
        BinaryPrimitives.WriteUInt32LittleEndian(h[24..], (uint)n);                   // entry_num
        BinaryPrimitives.WriteUInt32LittleEndian(h[28..], 0);                         // __reserved
        int rc = _fd.Ioctl(IommufdRequest.HwptInvalidate, h);
        uint handled = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
        Forwarded += handled;
        if (rc != 0 || handled != (uint)n)
        {
            Failures++;
        }
    }
}
// </docs:notifier-forwarder>

/// <summary>
/// The passthrough case in process: a guest drives a VT-d queue (unit A, guest domain 3); a <see cref="NestedHwptForwarder"/>
/// subscribed to A's engine forwards what A invalidated to a second context, an iommufd whose nested VT-d S1 HWPT caches
/// the same translations under the host's DID. After each guest wait, the second context's IOTLB holds exactly the
/// guest domain's PASID-0 entries that A still holds, relabelled; its other domain is untouched; and its ATS device
/// lost exactly the pages the host's nested invalidation flushes.
/// </summary>
public class PassthroughForwardingTests
{
    private const ushort GuestDid = 3;
    private const int Pages = 64;

    [Fact]
    public void GuestVtdQueue_ForwardedToIommufdNestedHwpt_SecondContextLosesExactlyWhatTheGuestDid()
    {
        using var host = new VtdSetup();                       // context B: the passthrough device's nested HWPT
        using var guest = new VtdRig();                         // unit A: the guest's vIOMMU
        guest.Enable(wide: true, qs: 1);
        var forwarder = new NestedHwptForwarder(host.U.Fd, host.Nested);
        using NotifierSubscription sub = guest.Engine.Notifiers.Subscribe(forwarder,
            new NotifierFilter { Scopes = NotifierScopes.Iotlb, DomainId = GuestDid, AddressSpaceId = 0 });

        ushort otherHostDid = (ushort)(host.Did + 1);
        void Fill()
        {
            for (ulong p = 0; p < Pages; p++)
            {
                guest.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, GuestDid, 0, p << 12, (p + 0x100) << 12));
                guest.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, GuestDid, 7, p << 12, (p + 0x200) << 12));
                host.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, host.Did, 0, p << 12, (p + 0x100) << 12));
                host.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, otherHostDid, 0, p << 12, (p + 0x300) << 12));
                host.Engine.DeviceTlb.Fill(new DeviceTlbEntry(VtdSetup.AtsSid, AddressSpace.None, p << 12, (p + 0x100) << 12));
            }
        }

        void AssertMirrors(string when, IEnumerable<int> gone)
        {
            var expectedGone = new HashSet<int>(gone);
            for (int p = 0; p < Pages; p++)
            {
                ulong a = (ulong)p << 12;
                bool inGuest = guest.Engine.Iotlb.TryLookup(TranslationStage.Stage1, GuestDid, 0, a, out _);
                Assert.True(inGuest == !expectedGone.Contains(p), $"{when}: guest page {p}");
                Assert.True(host.Cached(a) == inGuest, $"{when}: host page {p} cached {host.Cached(a)}, guest {inGuest}");
                Assert.True(host.Cached(a, otherHostDid), $"{when}: the host's other domain lost page {p}");
                bool atc = host.Engine.DeviceTlb.TryLookup(VtdSetup.AtsSid, AddressSpace.None, a, out _);
                Assert.True(atc == inGuest, $"{when}: ATS device page {p} cached {atc}");
            }
        }

        Fill();

        // Round 1: page 5; pages 16..19 (AM 2, leaf hint); PASID 7's non-global entries and domain 4 (filtered out); a
        // device-TLB invalidation (filtered out: the host's nested flush covers the ATS device); a wait.
        guest.Submit(Dsc.PIotlb(3, GuestDid, 0, 0x5000), Dsc.PIotlb(3, GuestDid, 0, 0x1_0000, am: 2, ih: true),
            Dsc.PIotlb(2, GuestDid, 7), Dsc.PIotlb(3, 4, 0, 0x2_0000), Dsc.PDevTlb(0x100, 0, 0x3_0000), VtdRig.StatusWait(0, data: 1));
        Assert.Equal(1u, guest.StatusAt(0));
        AssertMirrors("round 1", [5, 16, 17, 18, 19]);
        Assert.Equal(2, forwarder.Forwarded);
        Assert.False(guest.Engine.Iotlb.TryLookup(TranslationStage.Stage1, GuestDid, 7, 0x1000, out _)); // the guest's own PASID 7 went

        // Round 2: a 2 MiB block (AM 9) that covers every page, and a domain-selective flush after refilling.
        guest.Submit(Dsc.PIotlb(3, GuestDid, 0, 0x0, am: 9), VtdRig.StatusWait(4, data: 2));
        AssertMirrors("round 2", Enumerable.Range(0, Pages));
        Fill();
        AssertMirrors("refilled", []);
        guest.Submit(Dsc.Iotlb(2, did: GuestDid), VtdRig.StatusWait(8, data: 3));
        AssertMirrors("round 3", Enumerable.Range(0, Pages));
        Assert.Equal(0u, guest.Fsts);
        Assert.Equal(0, forwarder.Failures);
        Assert.Equal(0, sub.Faults);
        Assert.Equal(4, forwarder.Forwarded);
    }

    [Fact]
    public void Forwarder_SteadyState_AllocatesNothing()
    {
        using var host = new VtdSetup();
        using var guest = new VtdRig();
        guest.Enable(wide: true, qs: 1);
        var forwarder = new NestedHwptForwarder(host.U.Fd, host.Nested);
        using NotifierSubscription sub = guest.Engine.Notifiers.Subscribe(forwarder,
            new NotifierFilter { Scopes = NotifierScopes.Iotlb, DomainId = GuestDid, AddressSpaceId = 0 });
        int tail = 0, slots = guest.Slots;
        void Round()
        {
            for (int i = 0; i < 8; i++)
            {
                host.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, host.Did, 0, (ulong)i << 12, (ulong)i << 12));
                guest.Put(tail, Dsc.PIotlb(3, GuestDid, 0, (ulong)i << 12));
                tail = (tail + 1) % slots;
            }

            guest.Put(tail, VtdRig.StatusWait(0));
            tail = (tail + 1) % slots;
            guest.Write32(Reg.Iqt, (uint)(tail * guest.Width));
        }

        for (int warm = 0; warm < 40; warm++)
        {
            Round();
        }

        long total = 0;
        for (int round = 0; round < 30; round++)
        {
            total += AllocationMeter.Measure(Round);
        }

        Assert.Equal(0L, total);
        Assert.Equal(0, forwarder.Failures);
        Assert.False(host.Cached(0x3000));
        Assert.True(forwarder.Forwarded >= 70 * 8);
    }

    [Fact]
    public void NotifiersDoc_ShowsTheForwarderVerbatim()
    {
        string snippet = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("tests", "FastInval.Tests", "Notifiers", "PassthroughForwardingTests.cs")), "docs:notifier-forwarder");
        string doc = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("docs", "notifiers.md")), "docs:notifier-forwarder");
        Assert.True(snippet == doc, "docs/notifiers.md's forwarder must be exactly the code between the <docs:notifier-forwarder> markers of " +
            "PassthroughForwardingTests.cs. Copy it from here:\n\n" + snippet);
    }
}
