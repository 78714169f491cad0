using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>The register file: access sizes and offsets, read-only and write-1-to-clear fields, CAP/ECAP, GCMD/GSTS.</summary>
public class VtdRegisterTests
{
    private static ulong Field(ulong value, int hi, int lo) => (value >> lo) & ((hi - lo == 63) ? ulong.MaxValue : (1UL << (hi - lo + 1)) - 1);

    [Theory]
    [InlineData(Reg.Iqa, 2)]
    [InlineData(Reg.Iqa, 1)]
    [InlineData(Reg.Iqa, 16)]
    [InlineData(Reg.Iqa + 4, 8)]   // misaligned for 8
    [InlineData(Reg.Iqa + 2, 4)]   // misaligned for 4
    [InlineData(0x1000u, 4)]       // beyond the window
    [InlineData(0xFFFCu, 8)]
    [InlineData(uint.MaxValue, 4)]
    public void BadAccess_ReadsZero_AndWritesAreIgnored(uint offset, int size)
    {
        using var rig = new VtdRig();
        rig.Write64(Reg.Iqa, 0x1234_5000);
        rig.Unit.WriteRegister(offset, ulong.MaxValue, size);
        Assert.Equal(0UL, rig.Unit.ReadRegister(offset, size));
        Assert.Equal(0x1234_5000UL, rig.Read64(Reg.Iqa));
    }

    [Fact]
    public void SixtyFourBitRegisters_ReadAndWriteAsTwoDwords()
    {
        using var rig = new VtdRig();
        rig.Write32(Reg.Iqa, 0x5000_0801);
        rig.Write32(Reg.Iqa + 4, 0x0000_00AB);
        Assert.Equal(0xAB_5000_0801UL, rig.Read64(Reg.Iqa));
        Assert.Equal(0xABu, rig.Read32(Reg.Iqa + 4));
        rig.Write64(Reg.Rtaddr, 0xFFFF_FFFF_FFFF_FFFF);
        Assert.Equal(0xFFFF_FFFF_FFFF_FC00UL, rig.Read64(Reg.Rtaddr)); // RTA 63:12 and TTM 11:10
    }

    [Fact]
    public void ReadOnlyRegisters_IgnoreWrites()
    {
        using var rig = new VtdRig();
        ulong cap = rig.Read64(Reg.Cap), ecap = rig.Read64(Reg.Ecap);
        foreach (uint off in new[] { Reg.Ver, Reg.Cap, Reg.Ecap, Reg.Gsts, Reg.Iqh, Reg.Iqercd })
        {
            rig.Write64(off, ulong.MaxValue);
        }

        Assert.Equal(0x60u, rig.Read32(Reg.Ver));
        Assert.Equal((cap, ecap), (rig.Read64(Reg.Cap), rig.Read64(Reg.Ecap)));
        Assert.Equal(0u, rig.Read32(Reg.Gsts));
        Assert.Equal((0UL, 0UL), (rig.Read64(Reg.Iqh), rig.Read64(Reg.Iqercd)));
    }

    [Fact]
    public void UnimplementedRegisters_ReadZero()
    {
        using var rig = new VtdRig();
        foreach (uint off in new uint[] { 0x28, 0x2C, 0x58, 0x64, 0x200, 0x208, 0x220, 0x228, 0xE00, 0xFFC })
        {
            rig.Write32(off, 0xFFFF_FFFF);
            Assert.Equal(0u, rig.Read32(off));
        }

        rig.Write32(Reg.Gcmd, Reg.Te);
        Assert.Equal(0u, rig.Read32(Reg.Gcmd)); // write-only
    }

    [Fact]
    public void IqtAndMessageAddresses_KeepOnlyTheirFields()
    {
        using var rig = new VtdRig();
        rig.Write64(Reg.Iqt, 0xFFFF_FFFF_FFF8_000F); // QT is 18:4 (all clear here); other bits read 0
        Assert.Equal(0UL, rig.Read64(Reg.Iqt));
        rig.Write32(Reg.Feaddr, 0xFFFF_FFFF);
        rig.Write32(Reg.Ieaddr, 0xFFFF_FFFF);
        Assert.Equal((0xFFFF_FFFCu, 0xFFFF_FFFCu), (rig.Read32(Reg.Feaddr), rig.Read32(Reg.Ieaddr)));
    }

    [Fact]
    public void Fsts_WriteOneToClear_OnlyTheErrorBits()
    {
        var plan = new FaultPlan { CompletionErrorOrdinals = [0] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        rig.Submit(Dsc.DevTlb(1), new VtdDescriptor(0, 0));
        Assert.Equal(Reg.Iqe | Reg.Ice, rig.Fsts);
        rig.Write32(Reg.Fsts, 0); // writing 0 clears nothing
        Assert.Equal(Reg.Iqe | Reg.Ice, rig.Fsts);
        rig.Write32(Reg.Fsts, Reg.Ice);
        Assert.Equal(Reg.Iqe, rig.Fsts);
    }

    [Fact]
    public void Cap_ReportsTheDefaults()
    {
        using var rig = new VtdRig();
        ulong cap = rig.Read64(Reg.Cap);
        Assert.Equal(6UL, Field(cap, 2, 0));     // ND: 16-bit DIDs
        Assert.Equal(47UL, Field(cap, 21, 16));  // MGAW
        Assert.Equal(1UL, Field(cap, 39, 39));   // PSI
        Assert.Equal(18UL, Field(cap, 53, 48));  // MAMV
        Assert.Equal(1UL, Field(cap, 54, 54));   // DWD
        Assert.Equal(1UL, Field(cap, 55, 55));   // DRD
        Assert.Equal(0x220UL, Field(cap, 33, 24) * 16); // FRO
        Assert.Equal(0UL, Field(cap, 7, 7));     // CM
    }

    [Fact]
    public void Ecap_ReportsTheDefaultsAndEachOptionTurnsItsBitOff()
    {
        using var rig = new VtdRig();
        ulong ecap = rig.Read64(Reg.Ecap);
        foreach (int bit in new[] { 1, 2, 3, 40, 41, 42, 43 }) // QI, DT, IR, PASID, DIT, PDS, SMTS
        {
            Assert.Equal(1UL, Field(ecap, bit, bit));
        }

        Assert.Equal(19UL, Field(ecap, 39, 35)); // PSS: 20-bit PASIDs
        Assert.Equal(15UL, Field(ecap, 23, 20)); // MHMV
        Assert.Equal(0x200UL, Field(ecap, 17, 8) * 16); // IRO

        var off = new VtdOptions
        {
            ScalableMode = false,
            DeviceTlb = false,
            InterruptRemapping = false,
            PageRequestDrain = false,
            DrainReads = false,
            DrainWrites = false,
            CachingMode = true,
            MaxAddressMask = 9,
            MaxHandleMask = 3,
        };
        using var bare = new VtdRig(off);
        ulong e = bare.Read64(Reg.Ecap), c = bare.Read64(Reg.Cap);
        Assert.Equal(1UL << 1 | 1UL << 6 | 0x20UL << 8 | 3UL << 20, e); // QI, PT, IRO, MHMV only
        Assert.Equal((0UL, 0UL, 1UL, 9UL), (Field(c, 54, 54), Field(c, 55, 55), Field(c, 7, 7), Field(c, 53, 48)));
    }

    [Fact]
    public void Options_OutOfRange_Throw()
    {
        var memory = new GuestMemory();
        Assert.Throws<ArgumentOutOfRangeException>(() => new VtdIommu(memory, new VtdOptions { MaxAddressMask = 64 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VtdIommu(memory, new VtdOptions { MaxHandleMask = 16 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VtdIommu(memory, new VtdOptions { HostAddressWidth = 31 }));
        Assert.Throws<ArgumentNullException>(() => new VtdIommu(null!));
    }

    [Fact]
    public void Gcmd_StateBitsShowInGsts_OneShotBitsSetTheirStatus()
    {
        using var rig = new VtdRig();
        rig.Write32(Reg.Gcmd, Reg.Te | Reg.Ire);
        Assert.Equal(Reg.Te | Reg.Ire, rig.Read32(Reg.Gsts));
        rig.Write32(Reg.Gcmd, Reg.Te | Reg.Ire | Reg.Srtp | Reg.Sirtp);
        Assert.Equal(Reg.Te | Reg.Ire | Reg.Srtp | Reg.Sirtp, rig.Read32(Reg.Gsts));
        rig.Write32(Reg.Gcmd, Reg.Ire | Reg.Qie);
        Assert.Equal(Reg.Ire | Reg.Srtp | Reg.Sirtp | Reg.Qie, rig.Read32(Reg.Gsts));

        using var noIr = new VtdRig(new VtdOptions { InterruptRemapping = false });
        noIr.Write32(Reg.Gcmd, Reg.Ire | Reg.Sirtp);
        noIr.Write64(Reg.Irta, 0x1234_5000);
        Assert.Equal((0u, 0UL), (noIr.Read32(Reg.Gsts), noIr.Read64(Reg.Irta)));
        rig.Write64(Reg.Irta, 0x1234_5FFF);
        Assert.Equal(0x1234_580FUL, rig.Read64(Reg.Irta)); // IRTA 63:12, EIME 11, S 3:0
    }
}
