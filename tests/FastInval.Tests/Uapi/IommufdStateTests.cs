using System.Buffers.Binary;
using FastInval.Reference.Uapi;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Tests.Uapi;

/// <summary>The iommufd state image: layout, round trip of every object kind, refusal of every bad image (leaving the
/// destination as it was), the rules of save/restore/reset, and <see cref="Iommufd.Reset"/> against a fresh file.</summary>
public class IommufdStateTests
{
    private static readonly IommufdOptions s_selftest = new()
    {
        Selftest = true,
        EngineOptions = new EngineOptions { IotlbCapacity = 64, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 },
    };

    private static byte[] Save(Iommufd fd)
    {
        var image = new byte[fd.StateSize];
        Assert.Equal(image.Length, fd.SaveState(image));
        return image;
    }

    /// <summary>CRC-32C bit by bit (reflected polynomial 0x82F63B78), independent of the hardware path the library uses.</summary>
    private static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78u : crc >> 1;
            }
        }

        return ~crc;
    }

    /// <summary>Writes the checksum an image with these bytes must carry, so that a test reaches the structural checks.</summary>
    private static byte[] Reseal(byte[] image)
    {
        byte[] copy = [.. image];
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(12), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(12), Crc32C(copy));
        return copy;
    }

    private static uint U32(byte[] a, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(offset));

    private static ushort U16(byte[] a, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(a.AsSpan(offset));

    /// <summary>Restoring <paramref name="image"/> into <paramref name="fd"/> is refused with ArgumentException, and the
    /// context stays fresh (its image is still the empty one, and a good image still restores).</summary>
    private static void AssertRefused(Iommufd fd, byte[] image, string? messagePart = null)
    {
        byte[] before = Save(fd);
        ArgumentException ex = Assert.Throws<ArgumentException>(() => fd.RestoreState(image));
        if (messagePart is not null)
        {
            Assert.Contains(messagePart, ex.Message, StringComparison.Ordinal);
        }

        Assert.Equal(before, Save(fd));
        Assert.Equal("dids= vmids=", fd.DescribeTable());
    }

    [Fact]
    public void ReferenceCrc_MatchesTheCrc32CCheckValue() =>
        Assert.Equal(0xE306_9283u, Crc32C("123456789"u8));

    [Fact]
    public void EmptyContext_ImageIsTheDocumentedHeaderAlone()
    {
        using var u = new Ufd(s_selftest);
        byte[] image = Save(u.Fd);
        Assert.Equal(Iommufd.StateHeaderSize, image.Length);
        Assert.Equal("FIUF"u8.ToArray(), image[..4]);
        Assert.Equal(2, U16(image, 4));                  // version
        Assert.Equal(32, U16(image, 6));                 // header size
        Assert.Equal(32u, U32(image, 8));                // image size
        byte[] zeroed = [.. image];
        zeroed.AsSpan(12, 4).Clear();
        Assert.Equal(Crc32C(zeroed), U32(image, 12));  // CRC-32C of the image with this field 0
        Assert.Equal(1u, U32(image, 16));                // options: Selftest
        Assert.Equal(0u, U32(image, 20));                // Mainline
        Assert.Equal(0u, U32(image, 24));                // records
        Assert.Equal(0u, U32(image, 28));                // reserved
    }

    [Fact]
    public void Image_RecordsHaveTheDocumentedLayout()
    {
        using var u = new Ufd(new IommufdOptions { VtdErrorReporting = VtdErrorReporting.PerEntryHwError });
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        uint dev = u.Fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: true);
        Assert.Equal(0, u.Fd.AttachDevice(dev, ioas)); // automatic domain 3
        Assert.Equal((1u, 2u), (ioas, dev));
        byte[] image = Save(u.Fd);

        Assert.Equal(120, image.Length);
        Assert.Equal(120u, U32(image, 8));
        Assert.Equal(0u, U32(image, 16));     // no Selftest
        Assert.Equal(1u, U32(image, 20));     // PerEntryHwError
        Assert.Equal(3u, U32(image, 24));
        byte[] zeroed = [.. image];
        zeroed.AsSpan(12, 4).Clear();
        Assert.Equal(Crc32C(zeroed), U32(image, 12));

        // IOAS 1: its paging HWPTs {3}.
        Assert.Equal((1, 0, 1u, 8u), (U16(image, 32), U16(image, 34), U32(image, 36), U32(image, 40)));
        Assert.Equal((1u, 3u), (U32(image, 44), U32(image, 48)));

        // Device 2: VT-d, ATS, source id 0x10, no mock fields.
        Assert.Equal((4, 2u, 28u), (U16(image, 52), U32(image, 56), U32(image, 60)));
        Assert.Equal(new byte[] { 0, 1, 0, 0, 0x10, 0, 0, 0 }, image[64..72]);
        Assert.All(image[72..92], b => Assert.Equal(0, b));

        // Paging HWPT 3: VT-d, automatic domain, VMID 0, no fault object, devices {2}.
        Assert.Equal((2, 3u, 16u), (U16(image, 92), U32(image, 96), U32(image, 100)));
        Assert.Equal(new byte[] { 0, 2, 0, 0 }, image[104..108]);
        Assert.Equal(0u, U32(image, 108));
        Assert.Equal((1u, 2u), (U32(image, 112), U32(image, 116)));
    }

    [Fact]
    public void Topology_EveryObjectKind_RestoresToTheSameTableAndImage()
    {
        using var t = new Topology(VtdErrorReporting.Mainline, FaultPlan.None);
        var u = new Ufd(t.Fd, t.Memory);
        Assert.Equal(0, u.MockDomain(t.Ioas, out _, out _, out _, deviceFlags: MockSelftest.DeviceNoDirty));
        Assert.Equal(0, t.Fd.RemoveDevice(t.Others[2])); // VT-d device 0x10: detached, no vDEVICE
        uint lastArm = t.Fd.AddDevice(IommuKind.ArmSmmuV3, 0x102, ats: false);
        byte[] image = Save(t.Fd);

        using var fd = new Iommufd(t.Memory, t.Fd.Options);
        fd.RestoreState(image);
        Assert.Equal(t.Fd.DescribeTable(), fd.DescribeTable());
        Assert.Null(fd.CheckReferenceCounts());
        Assert.Equal(image, Save(fd));
        for (uint id = 0; id <= lastArm + 1; id++)
        {
            Assert.Equal(t.Fd.TryGetObjectType(id, out IommufdObjectType x), fd.TryGetObjectType(id, out IommufdObjectType y));
            Assert.Equal(x, y);
            Assert.Equal(t.Fd.TryGetDomainId(id, out ushort d1), fd.TryGetDomainId(id, out ushort d2));
            Assert.Equal(d1, d2);
        }

        // The next ids and errnos are the source's: a new VT-d domain gets the same id and DID, DESTROY of a held object is EBUSY.
        var v = new Ufd(fd, t.Memory);
        uint i3 = t.Others[3];
        Assert.Equal(u.HwptAllocVtd(i3, t.IntelParent, out uint h1), v.HwptAllocVtd(i3, t.IntelParent, out uint h2));
        Assert.Equal(h1, h2);
        t.Fd.TryGetDomainId(h1, out ushort did1);
        fd.TryGetDomainId(h2, out ushort did2);
        Assert.Equal(did1, did2);
        Assert.Equal(-Errno.EBUSY, v.Destroy(t.IntelParent));
        Assert.Equal(u.Destroy(t.Ioas), v.Destroy(t.Ioas));
    }

    [Fact]
    public void Tombstone_SurvivesTheRestore_ItsIdIsNeverHandedOut()
    {
        using var s = new SmmuSetup();
        Assert.Equal(0, s.U.Fd.RemoveDevice(s.Device2)); // its vDEVICE's id becomes a tombstone
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        fd.RestoreState(image);
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
        Assert.Contains("tombstone", fd.DescribeTable(), StringComparison.Ordinal);
        var v = new Ufd(fd, s.U.Memory);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(0, s.U.IoasAlloc(out uint x));
            Assert.Equal(0, v.IoasAlloc(out uint y));
            Assert.Equal(x, y);
        }
    }

    [Fact]
    public void EveryTruncation_AndALongerImage_AreRefusedAndChangeNothing()
    {
        using var t = new Topology(VtdErrorReporting.Mainline, FaultPlan.None);
        byte[] image = Save(t.Fd);
        using var fd = new Iommufd(t.Memory, t.Fd.Options);
        for (int n = 0; n < image.Length; n++)
        {
            AssertRefused(fd, image[..n]);
        }

        AssertRefused(fd, [.. image, 0]);
        AssertRefused(fd, Reseal([.. image, 0]));
        fd.RestoreState(image); // still fresh after all of them
        Assert.Equal(t.Fd.DescribeTable(), fd.DescribeTable());
    }

    [Fact]
    public void EverySingleBitFlip_IsRefusedAndChangesNothing()
    {
        using var s = new SmmuSetup();
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        for (int bit = 0; bit < image.Length * 8; bit++)
        {
            byte[] bad = [.. image];
            bad[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Throws<ArgumentException>(() => fd.RestoreState(bad));
        }

        Assert.Equal("dids= vmids=", fd.DescribeTable());
        fd.RestoreState(image);
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
    }

    [Fact]
    public void FlippedVersion_WrongMagic_OtherHeaderSize_AreRefused()
    {
        using var s = new SmmuSetup();
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        byte[] version = [.. image];
        version[4] ^= 1;
        AssertRefused(fd, version);
        AssertRefused(fd, Reseal(version), "version 3");
        byte[] magic = [.. image];
        magic[0] = (byte)'X';
        AssertRefused(fd, Reseal(magic), "magic");
        byte[] header = [.. image];
        header[6] = 40;
        AssertRefused(fd, Reseal(header));

        using var vtd = new VtdIommu(new GuestMemory());
        byte[] vtdImage = new byte[VtdIommu.StateSize];
        vtd.SaveState(vtdImage);
        AssertRefused(fd, vtdImage, "magic"); // another unit's image
    }

    [Fact]
    public void WrongOrUnknownRecordKind_IsRefused()
    {
        using var s = new SmmuSetup();
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        Assert.Equal(1, U16(image, 32)); // the first record is the IOAS
        foreach (ushort kind in new ushort[] { 0, 9, 0x55, 0xFF, 0x101, 0xFFFF })
        {
            byte[] bad = [.. image];
            BinaryPrimitives.WriteUInt16LittleEndian(bad.AsSpan(32), kind);
            AssertRefused(fd, Reseal(bad), "unknown record kind");
        }

        foreach (ushort kind in new ushort[] { 2, 3, 4, 5, 6, 7, 8, 0x100 })
        {
            byte[] bad = [.. image];
            BinaryPrimitives.WriteUInt16LittleEndian(bad.AsSpan(32), kind); // a known kind with the IOAS's payload
            AssertRefused(fd, Reseal(bad));
        }
    }

    [Fact]
    public void ForeignOptions_AreRefused()
    {
        using var u = new Ufd(s_selftest);
        byte[] image = Save(u.Fd);
        using var plain = new Iommufd(new UserMemory());
        AssertRefused(plain, image, "options");
        using var v8 = new Iommufd(new UserMemory(), new IommufdOptions { Selftest = true, VtdErrorReporting = VtdErrorReporting.PerEntryHwError });
        AssertRefused(v8, image, "options");
    }

    /// <summary>Tables no context can hold, each with a valid checksum, so the structural checks must catch them.</summary>
    [Fact]
    public void ImpossibleTables_AreRefused()
    {
        using var s = new SmmuSetup();
        // SmmuSetup: 1 IOAS, 2 and 3 devices, 4 nest parent, 5 vIOMMU, 6 and 7 vDEVICEs.
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        int Record(uint id)
        {
            int at = Iommufd.StateHeaderSize;
            while (U32(image, at + 4) != id)
            {
                at += 12 + (int)U32(image, at + 8);
            }

            return at;
        }

        byte[] Patch(uint id, int payloadOffset, uint value, int width = 4)
        {
            byte[] bad = [.. image];
            int at = Record(id) + 12 + payloadOffset;
            if (width == 4)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bad.AsSpan(at), value);
            }
            else if (width == 2)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(bad.AsSpan(at), (ushort)value);
            }
            else
            {
                bad[at] = (byte)value;
            }

            return Reseal(bad);
        }

        AssertRefused(fd, Patch(1, 4, 9));               // the IOAS lists a missing HWPT
        AssertRefused(fd, Patch(1, 4, 2));               // ... or a device
        AssertRefused(fd, Patch(5, 0, 1));               // the vIOMMU's parent is the IOAS
        AssertRefused(fd, Patch(6, 4, 3));               // two vDEVICEs on device 3
        AssertRefused(fd, Patch(7, 8, 1, 4));            // two vDEVICEs with virtual id 1
        AssertRefused(fd, Patch(3, 4, 0x100));           // device 3 takes device 2's stream id
        AssertRefused(fd, Patch(2, 0, 2, 1));            // a mock device without Selftest
        AssertRefused(fd, Patch(2, 0, 9, 1));            // an unknown driver
        AssertRefused(fd, Patch(4, 1, 0, 1));            // the vIOMMU's parent is no longer a nest parent (and has a VMID)
        AssertRefused(fd, Patch(4, 2, 0, 2));            // an SMMUv3 nest parent without a VMID
        AssertRefused(fd, Patch(4, 1, 3, 1));            // a nest parent that is an automatic domain
        AssertRefused(fd, Patch(2, 2, 1, 2));            // a reserved field
        AssertRefused(fd, Patch(7, -8, 6), "out of order"); // ids out of order
        AssertRefused(fd, Patch(7, -8, Iommufd.StateMaxId + 1), "above");
        byte[] count = [.. image];
        BinaryPrimitives.WriteUInt32LittleEndian(count.AsSpan(24), U32(image, 24) + 1);
        AssertRefused(fd, Reseal(count), "past the end");
        BinaryPrimitives.WriteUInt32LittleEndian(count.AsSpan(24), U32(image, 24) - 1);
        AssertRefused(fd, Reseal(count), "follow the last record");
        fd.RestoreState(image);
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
    }

    /// <summary>Random resealed corruptions of a rich image: a restore either refuses the image (ArgumentException, nothing
    /// changed) or builds a table whose links and users counts agree and that answers ioctls and saves again.</summary>
    [Fact]
    public void RandomResealedCorruption_RefusedOrConsistent_NeverAnotherException()
    {
        using var t = new Topology(VtdErrorReporting.Mainline, FaultPlan.None);
        byte[] image = Save(t.Fd);
        var random = new Random(11);
        int accepted = 0;
        for (int i = 0; i < 3000; i++)
        {
            byte[] bad = [.. image];
            for (int k = random.Next(1, 4); k > 0; k--)
            {
                bad[random.Next(16, bad.Length)] = (byte)random.Next(0, 8);
            }

            using var fd = new Iommufd(t.Memory, t.Fd.Options);
            try
            {
                fd.RestoreState(Reseal(bad));
            }
            catch (ArgumentException)
            {
                Assert.Equal("dids= vmids=", fd.DescribeTable());
                continue;
            }

            accepted++;
            Assert.Null(fd.CheckReferenceCounts());
            var u = new Ufd(fd, t.Memory);
            for (uint id = 0; id < 30; id++)
            {
                u.Destroy(id);
                fd.RemoveDevice(id);
            }

            Assert.Null(fd.CheckReferenceCounts());
            using var again = new Iommufd(t.Memory, t.Fd.Options);
            again.RestoreState(Save(fd));
            Assert.Equal(fd.DescribeTable(), again.DescribeTable());
        }

        Assert.InRange(accepted, 1, 2999); // some corruptions hit free fields (a mock slot, a stream id), most are refused
    }

    [Fact]
    public void Restore_IntoAContextWithObjectsOrTombstones_IsInvalidOperation()
    {
        using var s = new SmmuSetup();
        byte[] image = Save(s.U.Fd);
        string before = s.U.Fd.DescribeTable();
        Assert.Throws<InvalidOperationException>(() => s.U.Fd.RestoreState(image));
        Assert.Equal(before, s.U.Fd.DescribeTable());

        using var fd = new Iommufd(new UserMemory(), s.U.Fd.Options);
        uint dev = fd.AddDevice(IommuKind.ArmSmmuV3, 1, ats: false);
        Assert.Equal(0, fd.RemoveDevice(dev)); // empty again: a fresh table
        fd.RestoreState(image);
        Assert.Equal(before, fd.DescribeTable());
    }

    [Fact]
    public void SaveState_ShortDestination_ArgumentExceptionNothingWritten()
    {
        using var s = new SmmuSetup();
        byte[] destination = new byte[s.U.Fd.StateSize - 1];
        Array.Fill(destination, (byte)0xAA);
        Assert.Throws<ArgumentException>(() => s.U.Fd.SaveState(destination));
        Assert.All(destination, b => Assert.Equal(0xAA, b));
    }

    [Fact]
    public void Disposed_EveryStateMember_ObjectDisposed()
    {
        var fd = new Iommufd(new UserMemory());
        byte[] image = Save(fd);
        fd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => fd.StateSize);
        Assert.Throws<ObjectDisposedException>(() => fd.SaveState(new byte[64]));
        Assert.Throws<ObjectDisposedException>(() => fd.RestoreState(image));
        Assert.Throws<ObjectDisposedException>(fd.Reset);
    }

    [Fact]
    public void FromInsideAnIoctl_SaveRestoreReset_InvalidOperation()
    {
        using var s = new SmmuSetup();
        byte[] image = Save(s.U.Fd);
        var seen = new List<string>();
        using NotifierSubscription sub = s.Engine.Notifiers.Subscribe(records =>
        {
            foreach (Action call in new Action[] { () => s.U.Fd.SaveState(new byte[4096]), () => s.U.Fd.RestoreState(image), s.U.Fd.Reset, () => GC.KeepAlive(s.U.Fd.StateSize) })
            {
                try
                {
                    call();
                    seen.Add("ran");
                }
                catch (InvalidOperationException)
                {
                    seen.Add("refused");
                }
            }
        });
        byte[] cmd = new byte[16];
        cmd[0] = 0x11; // TLBI_NH_ASID
        uint num = 1;
        Assert.Equal(0, s.U.Invalidate(s.Viommu, s.U.Map(cmd), InvalidateDataType.ArmSmmuV3, 16, ref num));
        Assert.Equal(["refused", "refused", "refused", "refused"], seen);
        Assert.Equal(image, Save(s.U.Fd));
    }

    [Fact]
    public void Reset_IsAFreshFile_IdsRestartAndCachesAreEmpty()
    {
        using var t = new Topology(VtdErrorReporting.PerEntryHwError, FaultPlan.None);
        InvalidationEngine vtd = t.VtdEngine, smmu = t.SmmuEngine;
        vtd.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, t.DidA, 0, 0x1000, 0x2000));
        vtd.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x1000, 0x2000));
        smmu.ConfigCache.Fill(new ConfigEntry(ConfigKinds.ContextDescriptor, 0x100, 0, t.Vmid, 0));
        t.Fd.Reset();

        var freshMemory = new UserMemory();
        using var fresh = new Iommufd(freshMemory, new IommufdOptions { Selftest = true, VtdErrorReporting = VtdErrorReporting.PerEntryHwError });
        Assert.Equal(fresh.DescribeTable(), t.Fd.DescribeTable());
        Assert.Equal(Save(fresh), Save(t.Fd));
        Assert.Same(vtd, t.Fd.Engine(IommuKind.IntelVtd)); // the engines (and their subscriptions) stay
        Assert.Equal((0, 0, 0), (vtd.Iotlb.Count, vtd.DeviceTlb.Count, smmu.ConfigCache.Count));

        // The same calls give the same ids and errnos as on the fresh file: the devices are gone, DIDs and VMIDs restart.
        foreach (Iommufd fd in new[] { t.Fd, fresh })
        {
            Assert.Equal(1u, fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: true));
            Assert.Equal(2u, fd.AddDevice(IommuKind.ArmSmmuV3, 0x100, ats: true));
        }

        var a = new Ufd(t.Fd, t.Memory);
        var b = new Ufd(fresh, freshMemory);
        Assert.Equal(a.IoasAlloc(out uint ioasA), b.IoasAlloc(out uint ioasB));
        Assert.Equal((3u, 3u), (ioasA, ioasB));
        Assert.Equal(0, a.HwptAlloc(1, 3, (uint)HwptAllocFlags.NestParent, out uint pa));
        Assert.Equal(0, b.HwptAlloc(1, 3, (uint)HwptAllocFlags.NestParent, out uint pb));
        Assert.Equal(0, a.HwptAllocVtd(1, pa, out uint na));
        Assert.Equal(0, b.HwptAllocVtd(1, pb, out uint nb));
        Assert.Equal(0, a.HwptAlloc(2, 3, (uint)HwptAllocFlags.NestParent, out uint sa));
        Assert.Equal(0, b.HwptAlloc(2, 3, (uint)HwptAllocFlags.NestParent, out uint sb));
        Assert.Equal((pa, na, sa), (pb, nb, sb));
        Assert.True(t.Fd.TryGetDomainId(na, out ushort didA));
        Assert.True(fresh.TryGetDomainId(nb, out ushort didB));
        Assert.Equal((2, 2), (didA, didB)); // the first DID again
        Assert.True(t.Fd.TryGetDomainId(sa, out ushort vmidA));
        Assert.Equal(1, vmidA);              // the first VMID again
        Assert.Equal(fresh.DescribeTable(), t.Fd.DescribeTable());
    }

    [Fact]
    public void RestoredContext_SteadyStateInvalidate_AllocatesNothing()
    {
        using var t = new Topology(VtdErrorReporting.PerEntryHwError, FaultPlan.None);
        using var fd = new Iommufd(t.Memory, t.Fd.Options);
        fd.RestoreState(Save(t.Fd));
        byte[] entries = new byte[4 * VtdS1Invalidate.EntrySize];
        for (int i = 0; i < 4; i++)
        {
            VtdS1Invalidate.Write(entries.AsSpan(i * VtdS1Invalidate.EntrySize), (ulong)i << 12, 1, 0);
        }

        byte[] arg = Ufd.InvalidateStruct(t.VtdA, t.Memory.Map(entries), InvalidateDataType.VtdS1, VtdS1Invalidate.EntrySize, 4);
        InvalidationEngine engine = fd.Engine(IommuKind.IntelVtd);
        int failures = 0;
        void Round()
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, t.DidA, 0, 0x1000, 0x2000));
            failures += fd.Ioctl(IommufdRequest.HwptInvalidate, arg) == 0 ? 0 : 1;
        }

        Round(); // the first call on the domain may size its buffers
        Assert.Equal(0, AllocationMeter.Measure(Round));
        Assert.Equal(0, failures);
        Assert.Equal(4u, Ufd.U32(arg, 24));
        Assert.Equal(0, engine.Iotlb.Count); // the entry was really invalidated each time
    }

    [Fact]
    public void Reset_ThenRestore_TheContextIsFreshAgain()
    {
        using var s = new SmmuSetup();
        byte[] image = Save(s.U.Fd);
        Assert.Equal(0, s.U.IoasAlloc(out _));
        s.U.Fd.Reset();
        s.U.Fd.RestoreState(image);
        Assert.Equal(image, Save(s.U.Fd));
    }
}
