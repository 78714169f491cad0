namespace FastInval.Vtd;

/// <summary>
/// Register offsets (from the remapping unit's base) and field bits of the registers <see cref="VtdIommu"/> implements,
/// for a VMM's MMIO dispatch and for guest-driver models. Every register is a whole number of dwords; a 64-bit register is
/// its low dword at the offset and its high dword at offset + 4. Single-bit fields are masks; multi-bit fields have a
/// <c>Shift</c> and a <c>Mask</c> (the mask already shifted into place).
/// </summary>
public static class VtdRegisters
{
    // ---- offsets --------------------------------------------------------------------------------------

    /// <summary>VER_REG, version (32-bit, read-only).</summary>
    public const uint Ver = 0x00;

    /// <summary>CAP_REG, capabilities (64-bit, read-only).</summary>
    public const uint Cap = 0x08;

    /// <summary>ECAP_REG, extended capabilities (64-bit, read-only).</summary>
    public const uint Ecap = 0x10;

    /// <summary>GCMD_REG, global command (32-bit, write-only: reads 0).</summary>
    public const uint Gcmd = 0x18;

    /// <summary>GSTS_REG, global status (32-bit, read-only).</summary>
    public const uint Gsts = 0x1C;

    /// <summary>RTADDR_REG, root table address (64-bit).</summary>
    public const uint Rtaddr = 0x20;

    /// <summary>FSTS_REG, fault status (32-bit; IQE, ICE, ITE, PFO are write-1-to-clear).</summary>
    public const uint Fsts = 0x34;

    /// <summary>FECTL_REG, fault event control (32-bit: IM writable, IP read-only).</summary>
    public const uint Fectl = 0x38;

    /// <summary>FEDATA_REG, fault event MSI data (32-bit).</summary>
    public const uint Fedata = 0x3C;

    /// <summary>FEADDR_REG, fault event MSI address bits 31:2 (32-bit).</summary>
    public const uint Feaddr = 0x40;

    /// <summary>FEUADDR_REG, fault event MSI upper address (32-bit).</summary>
    public const uint Feuaddr = 0x44;

    /// <summary>IQH_REG, invalidation queue head (64-bit, read-only; bits 18:4).</summary>
    public const uint Iqh = 0x80;

    /// <summary>IQT_REG, invalidation queue tail (64-bit; bits 18:4). Writing its low dword rings the doorbell.</summary>
    public const uint Iqt = 0x88;

    /// <summary>IQA_REG, invalidation queue address (64-bit: base 63:12, DW 11, QS 2:0).</summary>
    public const uint Iqa = 0x90;

    /// <summary>ICS_REG, invalidation completion status (32-bit; IWC is write-1-to-clear).</summary>
    public const uint Ics = 0x9C;

    /// <summary>IECTL_REG, invalidation event control (32-bit: IM writable, IP read-only).</summary>
    public const uint Iectl = 0xA0;

    /// <summary>IEDATA_REG, invalidation event MSI data (32-bit).</summary>
    public const uint Iedata = 0xA4;

    /// <summary>IEADDR_REG, invalidation event MSI address bits 31:2 (32-bit).</summary>
    public const uint Ieaddr = 0xA8;

    /// <summary>IEUADDR_REG, invalidation event MSI upper address (32-bit).</summary>
    public const uint Ieuaddr = 0xAC;

    /// <summary>IQERCD_REG, invalidation queue error record (64-bit, read-only: IQEI, ITESID, ICESID).</summary>
    public const uint Iqercd = 0xB0;

    /// <summary>IRTA_REG, interrupt remapping table address (64-bit, with ECAP.IR).</summary>
    public const uint Irta = 0xB8;

    /// <summary>IOTLB registers (IVA_REG, IOTLB_REG) as advertised by ECAP.IRO: not implemented (VER 6.0 has no
    /// register-based invalidation), they read 0.</summary>
    public const uint IotlbRegisters = 0x200;

    /// <summary>The one fault-recording register (FRCD, 128 bits) as advertised by CAP.FRO / NFR = 0: reads 0 (no fault).</summary>
    public const uint FaultRecording = 0x220;

    /// <summary>Size of the register window; accesses at or beyond it are ignored (writes) or read 0.</summary>
    public const uint WindowSize = 0x1000;

    // ---- VER ------------------------------------------------------------------------------------------

    /// <summary>Architecture version 6.0: the version from which register-based invalidation is not supported, which is
    /// what this unit models (queued invalidation only).</summary>
    public const uint VersionValue = 0x60;

    // ---- CAP ------------------------------------------------------------------------------------------

    /// <summary>CAP.ND, bits 2:0: number of domains (6 = 2^16).</summary>
    public const int CapNdShift = 0;

    /// <summary>CAP.ND mask.</summary>
    public const ulong CapNdMask = 0x7UL << CapNdShift;

    /// <summary>CAP.CM, bit 7: caching mode.</summary>
    public const int CapCmShift = 7;

    /// <summary>CAP.SAGAW, bits 12:8: supported second-stage address widths.</summary>
    public const int CapSagawShift = 8;

    /// <summary>CAP.SAGAW mask.</summary>
    public const ulong CapSagawMask = 0x1FUL << CapSagawShift;

    /// <summary>CAP.MGAW, bits 21:16: maximum guest address width minus 1.</summary>
    public const int CapMgawShift = 16;

    /// <summary>CAP.MGAW mask.</summary>
    public const ulong CapMgawMask = 0x3FUL << CapMgawShift;

    /// <summary>CAP.ZLR, bit 22: zero-length read.</summary>
    public const int CapZlrShift = 22;

    /// <summary>CAP.FRO, bits 33:24: fault-recording register offset / 16.</summary>
    public const int CapFroShift = 24;

    /// <summary>CAP.FRO mask.</summary>
    public const ulong CapFroMask = 0x3FFUL << CapFroShift;

    /// <summary>CAP.SLLPS, bits 37:34: second-stage large page sizes.</summary>
    public const int CapSllpsShift = 34;

    /// <summary>CAP.SLLPS mask.</summary>
    public const ulong CapSllpsMask = 0xFUL << CapSllpsShift;

    /// <summary>CAP.PSI, bit 39: page-selective invalidation.</summary>
    public const int CapPsiShift = 39;

    /// <summary>CAP.NFR, bits 47:40: number of fault-recording registers minus 1.</summary>
    public const int CapNfrShift = 40;

    /// <summary>CAP.NFR mask.</summary>
    public const ulong CapNfrMask = 0xFFUL << CapNfrShift;

    /// <summary>CAP.MAMV, bits 53:48: maximum address mask value of a page-selective IOTLB invalidation.</summary>
    public const int CapMamvShift = 48;

    /// <summary>CAP.MAMV mask.</summary>
    public const ulong CapMamvMask = 0x3FUL << CapMamvShift;

    /// <summary>CAP.DWD, bit 54: write draining.</summary>
    public const int CapDwdShift = 54;

    /// <summary>CAP.DRD, bit 55: read draining.</summary>
    public const int CapDrdShift = 55;

    /// <summary>CAP.FL1GP, bit 56: first-stage 1 GiB pages.</summary>
    public const int CapFl1gpShift = 56;

    // ---- ECAP -----------------------------------------------------------------------------------------

    /// <summary>ECAP.QI, bit 1: queued invalidation.</summary>
    public const int EcapQiShift = 1;

    /// <summary>ECAP.DT, bit 2: device TLBs.</summary>
    public const int EcapDtShift = 2;

    /// <summary>ECAP.IR, bit 3: interrupt remapping.</summary>
    public const int EcapIrShift = 3;

    /// <summary>ECAP.EIM, bit 4: extended interrupt mode.</summary>
    public const int EcapEimShift = 4;

    /// <summary>ECAP.PT, bit 6: pass-through.</summary>
    public const int EcapPtShift = 6;

    /// <summary>ECAP.IRO, bits 17:8: IOTLB register offset / 16.</summary>
    public const int EcapIroShift = 8;

    /// <summary>ECAP.IRO mask.</summary>
    public const ulong EcapIroMask = 0x3FFUL << EcapIroShift;

    /// <summary>ECAP.MHMV, bits 23:20: maximum handle mask value of an index-selective IEC invalidation.</summary>
    public const int EcapMhmvShift = 20;

    /// <summary>ECAP.MHMV mask.</summary>
    public const ulong EcapMhmvMask = 0xFUL << EcapMhmvShift;

    /// <summary>ECAP.NEST, bit 26: nested translation.</summary>
    public const int EcapNestShift = 26;

    /// <summary>ECAP.PSS, bits 39:35: PASID size minus 1.</summary>
    public const int EcapPssShift = 35;

    /// <summary>ECAP.PSS mask.</summary>
    public const ulong EcapPssMask = 0x1FUL << EcapPssShift;

    /// <summary>ECAP.PASID, bit 40.</summary>
    public const int EcapPasidShift = 40;

    /// <summary>ECAP.DIT, bit 41: device-TLB invalidation throttling.</summary>
    public const int EcapDitShift = 41;

    /// <summary>ECAP.PDS, bit 42: page-request drain.</summary>
    public const int EcapPdsShift = 42;

    /// <summary>ECAP.SMTS, bit 43: scalable-mode translation.</summary>
    public const int EcapSmtsShift = 43;

    /// <summary>ECAP.SLTS, bit 46: second-stage translation.</summary>
    public const int EcapSltsShift = 46;

    /// <summary>ECAP.FLTS, bit 47: first-stage translation.</summary>
    public const int EcapFltsShift = 47;

    // ---- GCMD / GSTS (same bit positions) --------------------------------------------------------------

    /// <summary>GCMD.TE / GSTS.TES, bit 31: translation enable (a state).</summary>
    public const uint Te = 1u << 31;

    /// <summary>GCMD.SRTP / GSTS.RTPS, bit 30: set root table pointer (one-shot; latches RTADDR.TTM).</summary>
    public const uint Srtp = 1u << 30;

    /// <summary>GCMD.SFL / GSTS.FLS, bit 29: set fault log (ignored: no advanced fault logging).</summary>
    public const uint Sfl = 1u << 29;

    /// <summary>GCMD.EAFL / GSTS.AFLS, bit 28: advanced fault logging (not supported).</summary>
    public const uint Eafl = 1u << 28;

    /// <summary>GCMD.WBF / GSTS.WBFS, bit 27: write-buffer flush (ignored: no CAP.RWBF).</summary>
    public const uint Wbf = 1u << 27;

    /// <summary>GCMD.QIE / GSTS.QIES, bit 26: queued invalidation enable (a state).</summary>
    public const uint Qie = 1u << 26;

    /// <summary>GCMD.IRE / GSTS.IRES, bit 25: interrupt remapping enable (a state, with ECAP.IR).</summary>
    public const uint Ire = 1u << 25;

    /// <summary>GCMD.SIRTP / GSTS.IRTPS, bit 24: set interrupt remap table pointer (one-shot, with ECAP.IR).</summary>
    public const uint Sirtp = 1u << 24;

    /// <summary>GCMD.CFI / GSTS.CFIS, bit 23: compatibility format interrupts (a state, with ECAP.IR).</summary>
    public const uint Cfi = 1u << 23;

    // ---- RTADDR ----------------------------------------------------------------------------------------

    /// <summary>RTADDR.TTM, bits 11:10: translation table mode (0 legacy, 1 scalable).</summary>
    public const int RtaddrTtmShift = 10;

    /// <summary>RTADDR.TTM mask.</summary>
    public const ulong RtaddrTtmMask = 3UL << RtaddrTtmShift;

    /// <summary>RTADDR writable bits: RTA 63:12 and TTM.</summary>
    internal const ulong RtaddrWritable = ~0xFFFUL | RtaddrTtmMask;

    // ---- FSTS / FECTL / IECTL / ICS --------------------------------------------------------------------

    /// <summary>FSTS.PFO, bit 0: primary fault overflow (never set: no fault recording).</summary>
    public const uint Pfo = 1u << 0;

    /// <summary>FSTS.PPF, bit 1: primary pending fault (never set).</summary>
    public const uint Ppf = 1u << 1;

    /// <summary>FSTS.IQE, bit 4: invalidation queue error (write 1 to clear and resume).</summary>
    public const uint Iqe = 1u << 4;

    /// <summary>FSTS.ICE, bit 5: invalidation completion error.</summary>
    public const uint Ice = 1u << 5;

    /// <summary>FSTS.ITE, bit 6: invalidation time-out error (write 1 to clear and resume).</summary>
    public const uint Ite = 1u << 6;

    /// <summary>The write-1-to-clear FSTS fields.</summary>
    public const uint FstsRw1c = Pfo | Iqe | Ice | Ite;

    /// <summary>The status fields that generate fault events: a newly set one raises an event only if none was set.</summary>
    public const uint FaultEventSources = Pfo | Ppf | Iqe | Ice | Ite;

    /// <summary>FECTL.IM / IECTL.IM, bit 31: interrupt mask (set at reset).</summary>
    public const uint InterruptMask = 1u << 31;

    /// <summary>FECTL.IP / IECTL.IP, bit 30: interrupt pending (read-only).</summary>
    public const uint InterruptPending = 1u << 30;

    /// <summary>ICS.IWC, bit 0: invalidation wait descriptor complete (write 1 to clear).</summary>
    public const uint Iwc = 1u << 0;

    /// <summary>FEADDR / IEADDR writable bits 31:2.</summary>
    public const uint MessageAddressWritable = 0xFFFF_FFFCu;

    // ---- IQH / IQT / IQA / IQERCD ----------------------------------------------------------------------

    /// <summary>IQH.QH / IQT.QT, bits 18:4: the queue offset in bytes (16-byte units).</summary>
    public const ulong QueueOffsetMask = 0x7FFF0;

    /// <summary>IQA.IQA, bits 63:12: the queue base address.</summary>
    public const ulong IqaBaseMask = ~0xFFFUL;

    /// <summary>IQA.DW, bit 11: descriptor width (1 = 256-bit descriptors).</summary>
    public const ulong IqaDw = 1UL << 11;

    /// <summary>IQA.QS, bits 2:0: queue size, 2^QS 4 KiB pages.</summary>
    public const ulong IqaQsMask = 7;

    /// <summary>IQA writable bits.</summary>
    public const ulong IqaWritable = IqaBaseMask | IqaDw | IqaQsMask;

    /// <summary>IQERCD.IQEI, bits 3:0: why the queue stopped (<see cref="VtdQueueError"/>).</summary>
    public const int IqeiShift = 0;

    /// <summary>IQERCD.IQEI mask.</summary>
    public const ulong IqeiMask = 0xFUL << IqeiShift;

    /// <summary>IQERCD.ITESID, bits 47:32: source id of the device-TLB invalidation that timed out.</summary>
    public const int ItesidShift = 32;

    /// <summary>IQERCD.ITESID mask.</summary>
    public const ulong ItesidMask = 0xFFFFUL << ItesidShift;

    /// <summary>IQERCD.ICESID, bits 63:48: source id of the device-TLB invalidation that completed with an error.</summary>
    public const int IcesidShift = 48;

    /// <summary>IQERCD.ICESID mask.</summary>
    public const ulong IcesidMask = 0xFFFFUL << IcesidShift;

    // ---- IRTA ------------------------------------------------------------------------------------------

    /// <summary>IRTA writable bits: IRTA 63:12, EIME 11, S 3:0.</summary>
    internal const ulong IrtaWritable = ~0xFFFUL | (1UL << 11) | 0xF;
}

/// <summary>IQERCD_REG.IQEI: why the invalidation queue stopped .</summary>
public enum VtdQueueError : byte
{
    /// <summary>No error (or no information).</summary>
    None = 0,

    /// <summary>IQT is beyond the queue (IQA.QS).</summary>
    InvalidTail = 1,

    /// <summary>A descriptor could not be read from guest memory.</summary>
    FetchError = 2,

    /// <summary>Undefined type, a type of an absent feature, a PASID-based type in a 128-bit queue, or any 128-bit
    /// descriptor while the unit translates in scalable mode.</summary>
    InvalidType = 3,

    /// <summary>A reserved field (or reserved encoding of a field) is set in a descriptor of a valid type.</summary>
    ReservedField = 4,

    /// <summary>IQA.DW = 1 (256-bit descriptors) on a unit without scalable mode.</summary>
    InvalidWidth = 5,

    /// <summary>IQT bit 4 is set while the queue holds 256-bit descriptors.</summary>
    TailNotAligned = 6,

    /// <summary>The active translation-table mode (RTADDR.TTM latched by SRTP) is reserved or unsupported.</summary>
    InvalidTranslationMode = 7,
}
