namespace FastInval.Vtd;

/// <summary>
/// Register offsets (from the remapping unit's base) and field bits of the registers <see cref="VtdIommu"/> implements
/// (spec/vtd-queued-invalidation.md §2.1). Every register is a whole number of dwords; a 64-bit register is its low dword
/// at the offset and its high dword at offset + 4.
/// </summary>
internal static class VtdRegisters
{
    // ---- offsets --------------------------------------------------------------------------------------

    public const uint Ver = 0x00;       // 32 RO
    public const uint Cap = 0x08;       // 64 RO
    public const uint Ecap = 0x10;      // 64 RO
    public const uint Gcmd = 0x18;      // 32 WO (reads 0)
    public const uint Gsts = 0x1C;      // 32 RO
    public const uint Rtaddr = 0x20;    // 64 RW
    public const uint Fsts = 0x34;      // 32 RW1C / RO
    public const uint Fectl = 0x38;     // 32 RW (IM) / RO (IP)
    public const uint Fedata = 0x3C;    // 32 RW
    public const uint Feaddr = 0x40;    // 32 RW (31:2)
    public const uint Feuaddr = 0x44;   // 32 RW
    public const uint Iqh = 0x80;       // 64 RO
    public const uint Iqt = 0x88;       // 64 RW (18:4)
    public const uint Iqa = 0x90;       // 64 RW (63:12, 11, 2:0)
    public const uint Ics = 0x9C;       // 32 RW1C (IWC)
    public const uint Iectl = 0xA0;     // 32 RW (IM) / RO (IP)
    public const uint Iedata = 0xA4;    // 32 RW
    public const uint Ieaddr = 0xA8;    // 32 RW (31:2)
    public const uint Ieuaddr = 0xAC;   // 32 RW
    public const uint Iqercd = 0xB0;    // 64 RO
    public const uint Irta = 0xB8;      // 64 RW (with ECAP.IR)

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

    public const int CapNdShift = 0;          // 2:0 number of domains: 6 = 2^16
    public const int CapCmShift = 7;
    public const int CapSagawShift = 8;       // 12:8
    public const int CapMgawShift = 16;       // 21:16 (width - 1)
    public const int CapZlrShift = 22;
    public const int CapFroShift = 24;        // 33:24 (offset / 16)
    public const int CapSllpsShift = 34;      // 37:34
    public const int CapPsiShift = 39;
    public const int CapNfrShift = 40;        // 47:40 (count - 1)
    public const int CapMamvShift = 48;       // 53:48
    public const int CapDwdShift = 54;
    public const int CapDrdShift = 55;
    public const int CapFl1gpShift = 56;

    // ---- ECAP -----------------------------------------------------------------------------------------

    public const int EcapQiShift = 1;
    public const int EcapDtShift = 2;
    public const int EcapIrShift = 3;
    public const int EcapEimShift = 4;
    public const int EcapPtShift = 6;
    public const int EcapIroShift = 8;        // 17:8 (offset / 16)
    public const int EcapMhmvShift = 20;      // 23:20
    public const int EcapNestShift = 26;
    public const int EcapPssShift = 35;       // 39:35 (PASID bits - 1)
    public const int EcapPasidShift = 40;
    public const int EcapDitShift = 41;
    public const int EcapPdsShift = 42;
    public const int EcapSmtsShift = 43;
    public const int EcapSltsShift = 46;
    public const int EcapFltsShift = 47;

    // ---- GCMD / GSTS (same bit positions) --------------------------------------------------------------

    public const uint Te = 1u << 31;          // translation enable (persistent)
    public const uint Srtp = 1u << 30;        // set root table pointer (one-shot) / RTPS
    public const uint Sfl = 1u << 29;         // set fault log (one-shot, no AFL: ignored)
    public const uint Eafl = 1u << 28;        // advanced fault logging (not supported)
    public const uint Wbf = 1u << 27;         // write-buffer flush (no RWBF: ignored)
    public const uint Qie = 1u << 26;         // queued invalidation enable (persistent)
    public const uint Ire = 1u << 25;         // interrupt remapping enable (persistent, with IR)
    public const uint Sirtp = 1u << 24;       // set interrupt remap table pointer (one-shot, with IR) / IRTPS
    public const uint Cfi = 1u << 23;         // compatibility format interrupts (persistent, with IR)

    // ---- RTADDR ----------------------------------------------------------------------------------------

    public const ulong RtaddrWritable = ~0xFFFUL | (3UL << RtaddrTtmShift);
    public const int RtaddrTtmShift = 10;     // 11:10 translation table mode

    // ---- FSTS / FECTL / IECTL / ICS --------------------------------------------------------------------

    public const uint Pfo = 1u << 0;          // primary fault overflow (RW1C; never set: no fault recording)
    public const uint Ppf = 1u << 1;          // primary pending fault (RO; never set)
    public const uint Iqe = 1u << 4;          // invalidation queue error (RW1C)
    public const uint Ice = 1u << 5;          // invalidation completion error (RW1C)
    public const uint Ite = 1u << 6;          // invalidation time-out error (RW1C)
    public const uint FstsRw1c = Pfo | Iqe | Ice | Ite;

    /// <summary>The status fields that generate fault events: a newly set one raises an event only if none was set.</summary>
    public const uint FaultEventSources = Pfo | Ppf | Iqe | Ice | Ite;

    public const uint InterruptMask = 1u << 31;    // IM (FECTL, IECTL)
    public const uint InterruptPending = 1u << 30; // IP (FECTL, IECTL)
    public const uint Iwc = 1u << 0;               // ICS invalidation wait descriptor complete
    public const uint MessageAddressWritable = 0xFFFF_FFFCu; // FEADDR / IEADDR bits 31:2

    // ---- IQH / IQT / IQA / IQERCD ----------------------------------------------------------------------

    public const ulong QueueOffsetMask = 0x7FFF0;  // IQH.QH / IQT.QT, bits 18:4
    public const ulong IqaBaseMask = ~0xFFFUL;     // 63:12
    public const ulong IqaDw = 1UL << 11;          // descriptor width: 1 = 256-bit
    public const ulong IqaQsMask = 7;              // 2:0 queue size: 2^QS pages
    public const ulong IqaWritable = IqaBaseMask | IqaDw | IqaQsMask;

    public const int IqeiShift = 0;                // 3:0
    public const int ItesidShift = 32;             // 47:32
    public const int IcesidShift = 48;             // 63:48

    // ---- IRTA ------------------------------------------------------------------------------------------

    public const ulong IrtaWritable = ~0xFFFUL | (1UL << 11) | 0xF; // IRTA 63:12, EIME 11, S 3:0
}

/// <summary>IQERCD_REG.IQEI: why the invalidation queue stopped (spec/vtd-queued-invalidation.md §2.5).</summary>
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
