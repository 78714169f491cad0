using System.Runtime.CompilerServices;
using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

public class VtdDescriptorDecoderTests
{
    private static readonly VtdCapabilities All = new(new VtdOptions());

    private static (VtdDecodeOutcome Outcome, VtdQueueError Error, InvalidationDescriptor[] Output) Decode(
        VtdDescriptor d, bool wide = true, VtdTranslationMode mode = VtdTranslationMode.Legacy, VtdOptions? options = null)
    {
        var caps = options is null ? All : new VtdCapabilities(options);
        var output = new InvalidationDescriptor[VtdDescriptorDecoder.MaxOutput];
        VtdDecodeOutcome outcome = VtdDescriptorDecoder.Decode(in d, in caps, wide, mode, output, out int count, out VtdQueueError error);
        return (outcome, error, output[..count]);
    }

    private static InvalidationDescriptor[] Ok(VtdDescriptor d, bool wide = true, VtdOptions? options = null)
    {
        var (outcome, error, output) = Decode(d, wide, options: options);
        Assert.Equal(VtdQueueError.None, error);
        Assert.Equal(VtdDecodeOutcome.Invalidation, outcome);
        return output;
    }

    private static void Error(VtdQueueError expected, VtdDescriptor d, bool wide = true,
        VtdTranslationMode mode = VtdTranslationMode.Legacy, VtdOptions? options = null)
    {
        var (outcome, error, output) = Decode(d, wide, mode, options);
        Assert.Equal(VtdDecodeOutcome.Error, outcome);
        Assert.Equal(expected, error);
        Assert.Empty(output);
    }

    // ---- layout and accessors ------------------------------------------------------------------------------

    [Fact]
    public void VtdDescriptor_Is32BlittableBytesAndRoundTripsBothWidths()
    {
        Assert.Equal(32, Unsafe.SizeOf<VtdDescriptor>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<VtdDescriptor>());
        var d = new VtdDescriptor(0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, 0x1111, 0x2222);
        Span<byte> bytes = stackalloc byte[32];
        d.Write(bytes);
        Assert.Equal(0xEF, bytes[0]);
        Assert.Equal(0x10, bytes[8]);
        Assert.Equal(d, VtdDescriptor.Read(bytes));
        VtdDescriptor narrow = VtdDescriptor.Read(bytes[..16]);
        Assert.Equal(new VtdDescriptor(d.Qw0, d.Qw1), narrow);
    }

    [Fact]
    public void Type_CombinesBits11_9AboveBits3_0()
    {
        Assert.Equal(0x6, new VtdDescriptor(0x6, 0).Type);
        Assert.Equal(0x16, new VtdDescriptor(0x6 | (1UL << 9), 0).Type);
        Assert.Equal(0x70, new VtdDescriptor(7UL << 9, 0).Type);
    }

    [Fact]
    public void Accessors_ReadTheDocumentedFields()
    {
        VtdDescriptor w = Dsc.Wait(sw: true, iflag: true, fn: true, pd: true, data: 0xCAFE_F00D, addr: 0x1234_5678_9ABC);
        Assert.True(w.StatusWrite && w.InterruptFlag && w.Fence && w.PageRequestDrain);
        Assert.Equal(0xCAFE_F00Du, w.StatusData);
        Assert.Equal(0x1234_5678_9ABCUL, w.StatusAddress);
        VtdDescriptor p = Dsc.PDevTlb(0xBEEF, 0xF_FFFF, 0x7_0000, sizeOrder: 2, global: true, pfsid: 0xABCD, mip: 5);
        Assert.Equal(0xBEEF, p.PasidDeviceSourceId);
        Assert.Equal(0xF_FFFFu, p.Pasid);
        Assert.True(p.GlobalInvalidate && p.PasidSizeBit);
        VtdDescriptor c = Dsc.Cc(3, did: 0x1234, sid: 0x5678, fm: 2);
        Assert.Equal((3, 0x1234, 0x5678, 2), (c.Granularity, (int)c.DomainId, (int)c.SourceId, c.FunctionMask));
        VtdDescriptor i = Dsc.Iotlb(3, 7, 0xABC_D000, am: 9, ih: true);
        Assert.Equal((9, true, 0xABC_D000UL), (i.AddressMask, i.InvalidationHint, i.PageAddress));
        VtdDescriptor e = Dsc.Iec(selective: true, im: 17, iidx: 0x4321);
        Assert.Equal((17, (ushort)0x4321), (e.IndexMask, e.SourceId));
    }

    // ---- types and widths ----------------------------------------------------------------------------------

    [Theory]
    [InlineData(0x0)]
    [InlineData(0x9)]   // page-group response: no ECAP.PRS
    [InlineData(0xA)]   // page-stream response
    [InlineData(0xF)]
    [InlineData(0x12)]  // a known low nibble with Type[6:4] = 1
    [InlineData(0x75)]
    public void Decode_UndefinedType_IsInvalidType(int type)
    {
        var d = new VtdDescriptor(((uint)type & 0xFu) | ((ulong)((uint)type >> 4) << 9), 0);
        Error(VtdQueueError.InvalidType, d, wide: true);
        Error(VtdQueueError.InvalidType, d, wide: false);
    }

    [Fact]
    public void Decode_PasidBasedTypesInA128BitQueue_AreInvalidTypes()
    {
        Error(VtdQueueError.InvalidType, Dsc.PIotlb(2, 1, 5), wide: false);
        Error(VtdQueueError.InvalidType, Dsc.Pc(3), wide: false);
        Error(VtdQueueError.InvalidType, Dsc.PDevTlb(0x10, 5), wide: false);
        Ok(Dsc.PIotlb(2, 1, 5), wide: true);
    }

    [Fact]
    public void Decode_LegacyTypesAreAcceptedInBothWidthsInLegacyMode()
    {
        foreach (bool wide in new[] { false, true })
        {
            Ok(Dsc.Cc(1), wide);
            Ok(Dsc.Iotlb(1), wide);
            Ok(Dsc.DevTlb(0x10), wide);
            Ok(Dsc.Iec(), wide);
            Assert.Equal(VtdDecodeOutcome.Wait, Decode(Dsc.Wait(), wide).Outcome);
        }
    }

    [Fact]
    public void Decode_128BitDescriptorInScalableMode_IsInvalidType()
    {
        Error(VtdQueueError.InvalidType, Dsc.Iotlb(1), wide: false, VtdTranslationMode.Scalable);
        Error(VtdQueueError.InvalidType, Dsc.Wait(), wide: false, VtdTranslationMode.Scalable);
        Assert.Equal(VtdDecodeOutcome.Wait, Decode(Dsc.Wait(), wide: true, VtdTranslationMode.Scalable).Outcome);
    }

    [Fact]
    public void Decode_InvalidTranslationMode_IsIqei7ForEveryDescriptor()
    {
        Error(VtdQueueError.InvalidTranslationMode, Dsc.Wait(), mode: VtdTranslationMode.Invalid);
        Error(VtdQueueError.InvalidTranslationMode, new VtdDescriptor(0, 0), mode: VtdTranslationMode.Invalid);
    }

    [Fact]
    public void Decode_TypeOfAnAbsentFeature_IsInvalidType()
    {
        var noDt = new VtdOptions { DeviceTlb = false };
        Error(VtdQueueError.InvalidType, Dsc.DevTlb(0x10), options: noDt);
        Error(VtdQueueError.InvalidType, Dsc.PDevTlb(0x10, 1), options: noDt);
        Error(VtdQueueError.InvalidType, Dsc.PDevTlb(0x10, 1), options: new VtdOptions { Pasid = false });
        Ok(Dsc.PIotlb(2, 1, 0), options: new VtdOptions { Pasid = false }); // first stage still uses RID_PASID
        Error(VtdQueueError.InvalidType, Dsc.Iec(), options: new VtdOptions { InterruptRemapping = false });
    }

    [Fact]
    public void Decode_NonZeroUpperHalfInA256BitQueue_IsReservedFieldForEveryType()
    {
        VtdDescriptor[] all = [Dsc.Cc(1), Dsc.Iotlb(1), Dsc.DevTlb(1), Dsc.Iec(), Dsc.Wait(), Dsc.PIotlb(2, 1, 1), Dsc.Pc(3), Dsc.PDevTlb(1, 1)];
        foreach (VtdDescriptor d in all)
        {
            Error(VtdQueueError.ReservedField, d.With(2, 0));
            Error(VtdQueueError.ReservedField, d.With(3, 63));
        }

        Error(VtdQueueError.InvalidType, new VtdDescriptor(0x9, 0, 1, 0)); // an unknown type stays a type error
    }

    // ---- reserved bits: every bit of QW0 and QW1 of every type -----------------------------------------------

    /// <summary>The field bits of each type (spec/vtd-queued-invalidation.md §1.3–§1.10), besides the type bits.</summary>
    private static (ulong Qw0, ulong Qw1) FieldBits(int type, bool dit, bool pds) => type switch
    {
        0x1 => (Bits(5, 4) | Bits(31, 16) | Bits(49, 32), 0),
        0x2 => (Bits(7, 4) | Bits(31, 16), Bits(6, 0) | Bits(63, 12)),
        0x3 => (Bits(20, 16) | Bits(47, 32) | (dit ? Bits(15, 12) | Bits(63, 52) : 0), 1 | Bits(63, 12)),
        0x4 => ((1UL << 4) | Bits(31, 27) | Bits(47, 32), 0),
        0x5 => (Bits(6, 4) | (pds ? 1UL << 7 : 0) | Bits(63, 32), Bits(63, 2)),
        0x6 => (Bits(5, 4) | Bits(31, 16) | Bits(51, 32), Bits(6, 0) | Bits(63, 12)),
        0x7 => (Bits(5, 4) | Bits(31, 16) | Bits(51, 32), 0),
        _ => (Bits(8, 4) | Bits(31, 16) | Bits(51, 32) | (dit ? Bits(15, 12) | Bits(63, 52) : 0), 1 | (1UL << 11) | Bits(63, 12)),
    };

    private static ulong Bits(int hi, int lo) => (hi == 63 ? ulong.MaxValue : (1UL << (hi + 1)) - 1) & ~((1UL << lo) - 1);

    /// <summary>Reserved encodings of the fields (a valid bit pattern that is nevertheless an IQE, IQEI 4).</summary>
    private static bool ReservedEncoding(VtdDescriptor d, int mamv) => d.Type switch
    {
        0x1 => d.Granularity == 0,
        0x2 => d.Granularity == 0 || (d.Granularity == 3 && d.AddressMask > mamv),
        0x4 => (d.Qw0 & 0x10) != 0 && d.IndexMask > 15,
        0x6 => d.Granularity < 2,
        0x7 => d.Granularity == 2,
        _ => false,
    };

    public static TheoryData<int, bool, bool> ReservedSweepCases()
    {
        var data = new TheoryData<int, bool, bool>();
        for (int type = 1; type <= 8; type++)
        {
            data.Add(type, true, true);
            data.Add(type, false, false);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ReservedSweepCases))]
    public void Decode_EverySingleBitFlip_IsAFieldOrAReservedFieldError(int type, bool dit, bool pds)
    {
        var options = new VtdOptions { DeviceTlbThrottling = dit, PageRequestDrain = pds };
        VtdDescriptor baseline = type switch
        {
            1 => Dsc.Cc(3, 0x10, 0x20),
            2 => Dsc.Iotlb(3, 1, 0x40_0000),
            3 => Dsc.DevTlb(0x10, 0x40_0000),
            4 => Dsc.Iec(),
            5 => Dsc.Wait(),
            6 => Dsc.PIotlb(3, 1, 5, 0x40_0000),
            7 => Dsc.Pc(3),
            _ => Dsc.PDevTlb(0x10, 5, 0x40_0000),
        };
        Assert.NotEqual(VtdDecodeOutcome.Error, Decode(baseline, options: options).Outcome);
        (ulong fields0, ulong fields1) = FieldBits(type, dit, pds);
        for (int word = 0; word < 2; word++)
        {
            for (int bit = 0; bit < 64; bit++)
            {
                if (word == 0 && (bit < 4 || bit is >= 9 and <= 11))
                {
                    continue; // type bits: a different type
                }

                VtdDescriptor flipped = word == 0
                    ? new VtdDescriptor(baseline.Qw0 ^ (1UL << bit), baseline.Qw1)
                    : new VtdDescriptor(baseline.Qw0, baseline.Qw1 ^ (1UL << bit));
                bool field = ((word == 0 ? fields0 : fields1) >> bit & 1) != 0;
                bool expectError = !field || ReservedEncoding(flipped, 18);
                var (outcome, error, _) = Decode(flipped, options: options);
                if (expectError)
                {
                    Assert.True(outcome == VtdDecodeOutcome.Error && error == VtdQueueError.ReservedField,
                        $"type {type} QW{word} bit {bit}: expected IQEI 4, got {outcome} {error}");
                }
                else
                {
                    Assert.True(outcome != VtdDecodeOutcome.Error, $"type {type} QW{word} bit {bit}: expected a field, got {error}");
                }
            }
        }
    }

    // ---- granularities and reserved encodings ----------------------------------------------------------------

    [Fact]
    public void Decode_ReservedGranularities_AreReservedFieldErrors()
    {
        Error(VtdQueueError.ReservedField, Dsc.Cc(0));
        Error(VtdQueueError.ReservedField, Dsc.Iotlb(0));
        Error(VtdQueueError.ReservedField, Dsc.PIotlb(0, 1, 5));
        Error(VtdQueueError.ReservedField, Dsc.PIotlb(1, 1, 5)); // pre-3.0 "non-globals of every PASID"
        Error(VtdQueueError.ReservedField, Dsc.Pc(2));
    }

    [Fact]
    public void Decode_IotlbAmAboveMamv_IsReservedField_PasidIotlbAmIsUnlimited()
    {
        Ok(Dsc.Iotlb(3, 1, 0, am: 18));
        Error(VtdQueueError.ReservedField, Dsc.Iotlb(3, 1, 0, am: 19));
        Ok(Dsc.Iotlb(3, 1, 0, am: 19), options: new VtdOptions { MaxAddressMask = 19 });
        Ok(Dsc.Iotlb(2, 1, 0, am: 40)); // AM is not a field of a domain-selective invalidation
        InvalidationDescriptor[] big = Ok(Dsc.PIotlb(3, 1, 5, 0x1234_5678_9000, am: 40));
        Assert.Equal((0x0UL, (1UL << 52) - 1), (big[0].First, big[0].Last));
        InvalidationDescriptor[] all = Ok(Dsc.PIotlb(3, 1, 5, 0xFFFF_FFFF_FFFF_F000, am: 52));
        Assert.Equal((0UL, ulong.MaxValue), (all[0].First, all[0].Last));
        Assert.Equal((0UL, ulong.MaxValue), (Ok(Dsc.PIotlb(3, 1, 5, 0, am: 63))[0].First, Ok(Dsc.PIotlb(3, 1, 5, 0, am: 63))[0].Last));
    }

    [Fact]
    public void Decode_IecIndexMaskAboveMhmv_IsReservedField()
    {
        Ok(Dsc.Iec(selective: true, im: 15, iidx: 0x8000));
        Error(VtdQueueError.ReservedField, Dsc.Iec(selective: true, im: 16));
        Error(VtdQueueError.ReservedField, Dsc.Iec(selective: true, im: 5), options: new VtdOptions { MaxHandleMask = 4 });
        Ok(Dsc.Iec(selective: false, im: 31)); // IM is not a field of a global invalidation
    }

    [Fact]
    public void Decode_WaitWithoutSwOrIf_IsAValidNoOp()
    {
        var (outcome, error, _) = Decode(Dsc.Wait(sw: false, iflag: false, fn: true));
        Assert.Equal((VtdDecodeOutcome.Wait, VtdQueueError.None), (outcome, error));
    }

    // ---- scopes ----------------------------------------------------------------------------------------------

    [Fact]
    public void Decode_ContextCache_GlobalDomainAndDeviceSelectiveWithEveryFunctionMask()
    {
        Assert.Equal([InvalidationDescriptor.ConfigAll(ConfigKinds.Context)], Ok(Dsc.Cc(1, did: 9, sid: 0x123)));
        Assert.Equal([InvalidationDescriptor.ConfigDomain(ConfigKinds.Context, 9)], Ok(Dsc.Cc(2, did: 9, sid: 0x123)));
        static InvalidationDescriptor One(uint sid) => InvalidationDescriptor.ConfigSources(ConfigKinds.Context, sid, sid);
        Assert.Equal([One(0x0A5)], Ok(Dsc.Cc(3, did: 9, sid: 0x0A5, fm: 0)));
        Assert.Equal([One(0x0A1), One(0x0A5)], Ok(Dsc.Cc(3, sid: 0x0A5, fm: 1)));
        Assert.Equal([One(0x0A1), One(0x0A3), One(0x0A5), One(0x0A7)], Ok(Dsc.Cc(3, sid: 0x0A5, fm: 2)));
        Assert.Equal([InvalidationDescriptor.ConfigSources(ConfigKinds.Context, 0x0A0, 0x0A7)], Ok(Dsc.Cc(3, sid: 0x0A5, fm: 3)));
    }

    [Fact]
    public void Decode_Iotlb_GlobalDomainAndPageSelective()
    {
        Assert.Equal([InvalidationDescriptor.IotlbAll(StageMask.All)], Ok(Dsc.Iotlb(1, did: 3)));
        Assert.Equal([InvalidationDescriptor.IotlbDomain(3, StageMask.All)], Ok(Dsc.Iotlb(2, did: 3, dr: true, dw: true)));
        Assert.Equal(
        [
            InvalidationDescriptor.IotlbRangeAllAddressSpaces(3, 0x4_0000, 0x7_FFFF, StageMask.Stage2, leafOnly: true),
            InvalidationDescriptor.IotlbDomain(3, StageMask.FirstStage),
        ], Ok(Dsc.Iotlb(3, did: 3, addr: 0x5_6000, am: 6, ih: true)));
    }

    [Fact]
    public void Decode_DeviceTlb_SizeBitEncodings()
    {
        Assert.Equal([InvalidationDescriptor.DeviceTlb(0x10, AddressSpace.None, 0x5000, 0x5FFF)], Ok(Dsc.DevTlb(0x10, 0x5000)));
        static (ulong, ulong) Range(VtdDescriptor d) => (Ok(d)[0].First, Ok(d)[0].Last);
        Assert.Equal((0x4000UL, 0x5FFFUL), Range(Dsc.DevTlb(0x10, 0x4000, mask: 1)));       // 8 KiB
        Assert.Equal((0x4000UL, 0x7FFFUL), Range(Dsc.DevTlb(0x10, 0x4000, mask: 2)));       // 16 KiB
        Assert.Equal((0x20_0000UL, 0x3F_FFFFUL), Range(Dsc.DevTlb(0x10, 0x20_0000, mask: 9))); // 2 MiB
        Assert.Equal((0UL, ulong.MaxValue), Range(Dsc.DevTlb(0x10, 0, mask: 52)));           // Linux flush-all
        Assert.Equal(0x7FFF_FFFF_FFFF_F001UL, Dsc.DevTlb(0x10, 0, mask: 52).Qw1);
        Assert.Equal((0UL, ulong.MaxValue), Range(new VtdDescriptor(0x3, ulong.MaxValue & ~0xFFEUL)));
        // A size encoding on an unaligned address names the naturally aligned block containing it.
        Assert.Equal((0x8000UL, 0xFFFFUL), Range(new VtdDescriptor(0x3, 0xB000 | 1)));      // PFN ...1011: lowest 0 at bit 2
    }

    [Fact]
    public void Decode_InterruptEntryCache_GlobalAndIndexBlocks()
    {
        Assert.Equal([InvalidationDescriptor.ConfigAll(ConfigKinds.InterruptEntry)], Ok(Dsc.Iec(iidx: 0x44)));
        Assert.Equal([InvalidationDescriptor.ConfigSources(ConfigKinds.InterruptEntry, 0x44, 0x44)], Ok(Dsc.Iec(true, 0, 0x44)));
        Assert.Equal([InvalidationDescriptor.ConfigSources(ConfigKinds.InterruptEntry, 0x40, 0x47)], Ok(Dsc.Iec(true, 3, 0x44)));
        Assert.Equal([InvalidationDescriptor.ConfigSources(ConfigKinds.InterruptEntry, 0x0, 0x7FFF)], Ok(Dsc.Iec(true, 15, 0x4444)));
    }

    [Fact]
    public void Decode_PasidIotlb_PasidSelectiveKeepsGlobals_PageSelectiveIncludesThem()
    {
        Assert.Equal([InvalidationDescriptor.IotlbAddressSpace(4, 0x12345, StageMask.FirstStage)], Ok(Dsc.PIotlb(2, 4, 0x12345)));
        Assert.Equal([InvalidationDescriptor.IotlbRange(4, 0x12345, 0x20_0000, 0x3F_FFFF, leafOnly: false, includeGlobal: true,
            stages: StageMask.FirstStage)], Ok(Dsc.PIotlb(3, 4, 0x12345, 0x21_3000, am: 9)));
        Assert.True((Ok(Dsc.PIotlb(3, 4, 1, 0, ih: true))[0].Flags & InvalidationFlags.LeafOnly) != 0);
    }

    [Fact]
    public void Decode_PasidCache_DomainPasidAndGlobal()
    {
        Assert.Equal([InvalidationDescriptor.ConfigDomain(ConfigKinds.PasidEntry, 7)], Ok(Dsc.Pc(0, 7, 9)));
        Assert.Equal([InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.PasidEntry, 9, domainId: 7)], Ok(Dsc.Pc(1, 7, 9)));
        Assert.Equal([InvalidationDescriptor.ConfigAll(ConfigKinds.PasidEntry)], Ok(Dsc.Pc(3, 7, 9)));
    }

    [Fact]
    public void Decode_PasidDeviceTlb_PasidOrEveryPasidWithTheSizeAtBit11()
    {
        Assert.Equal([InvalidationDescriptor.DeviceTlb(0xBEEF, 5, 0x4000, 0x7FFF)], Ok(Dsc.PDevTlb(0xBEEF, 5, 0x4000, sizeOrder: 2)));
        Assert.Equal([InvalidationDescriptor.DeviceTlbAllPasids(0xBEEF, 0x4000, 0x4FFF)], Ok(Dsc.PDevTlb(0xBEEF, 5, 0x4000, global: true)));
        Assert.Equal([InvalidationDescriptor.DeviceTlb(0x10, 1, 0, ulong.MaxValue)], Ok(Dsc.PDevTlb(0x10, 1, 0, sizeOrder: 52)));
    }
}
