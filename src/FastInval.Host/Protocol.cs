namespace FastInval.Host;

/// <summary>Message types of the wire protocol (docs/protocol.md §3). A reply has the request's type with
/// <see cref="ReplyBit"/> set.</summary>
public static class MessageType
{
    /// <summary>Version negotiation and the server's limits.</summary>
    public const ushort Hello = 0x0001;

    /// <summary>Creates a unit.</summary>
    public const ushort Create = 0x0002;

    /// <summary>Destroys a unit.</summary>
    public const ushort Destroy = 0x0003;

    /// <summary>Caches entries (batched).</summary>
    public const ushort Fill = 0x0010;

    /// <summary>Looks entries up (batched).</summary>
    public const ushort Lookup = 0x0011;

    /// <summary>Executes an array of invalidation descriptors.</summary>
    public const ushort Execute = 0x0012;

    /// <summary>Replaces the unit's fault plan.</summary>
    public const ushort FaultPlan = 0x0013;

    /// <summary>Figures of a unit, or of the server with unit id 0.</summary>
    public const ushort Stats = 0x0014;

    /// <summary>Register read of a VT-d or SMMUv3 unit (1.1).</summary>
    public const ushort RegisterRead = 0x0020;

    /// <summary>Register write of a VT-d or SMMUv3 unit (1.1).</summary>
    public const ushort RegisterWrite = 0x0021;

    /// <summary>An iommufd ioctl on an iommufd-context unit (1.1).</summary>
    public const ushort IommufdIoctl = 0x0030;

    /// <summary>Reserved: map a unit's caches through a memfd.</summary>
    public const ushort MapSharedCache = 0x0040;

    /// <summary>First reserved event type (server-initiated frames).</summary>
    public const ushort FirstEvent = 0x4000;

    /// <summary>Last reserved event type.</summary>
    public const ushort LastEvent = 0x7FFE;

    /// <summary>Event: a VT-d invalidation-completion interrupt (1.1).</summary>
    public const ushort EventVtdCompletion = 0x4001;

    /// <summary>Event: a VT-d fault-event interrupt (IQE, ITE, ICE) (1.1).</summary>
    public const ushort EventVtdFault = 0x4002;

    /// <summary>Event: an SMMU CMD_SYNC completion signal (MSI, wired or SEV) (1.1).</summary>
    public const ushort EventSmmuCmdSyncMsi = 0x4003;

    /// <summary>Event: an SMMU global-error interrupt (1.1).</summary>
    public const ushort EventSmmuGerror = 0x4004;

    /// <summary>Event: a device-TLB invalidation timed out (1.1).</summary>
    public const ushort EventDeviceTlbTimeout = 0x4005;

    /// <summary>Set in a reply's type.</summary>
    public const ushort ReplyBit = 0x8000;

    /// <summary>The reply type of a frame that could not be read (bad length, too large, connection limit).</summary>
    public const ushort FrameError = 0xFFFF;
}

/// <summary>Error codes carried in a reply's status field (docs/protocol.md §5).</summary>
public enum ErrorCode : ushort
{
    /// <summary>Success.</summary>
    Ok = 0,

    /// <summary>The payload does not match the type and its counts, or a header field is wrong.</summary>
    Malformed = 1,

    /// <summary>Not a request type this server knows.</summary>
    UnknownType = 2,

    /// <summary>HELLO with an unsupported major version.</summary>
    Version = 3,

    /// <summary>A request before HELLO, or a second HELLO.</summary>
    HelloState = 4,

    /// <summary>No such unit on this connection.</summary>
    UnknownUnit = 5,

    /// <summary>Too many units on this connection.</summary>
    UnitLimit = 6,

    /// <summary>A reserved field, unknown flag bit or out-of-range selector, capacity or rate.</summary>
    InvalidArgument = 7,

    /// <summary>A unit kind the server does not serve yet.</summary>
    UnsupportedKind = 8,

    /// <summary>The frame is larger than the advertised limit; the connection is closed.</summary>
    FrameTooLarge = 9,

    /// <summary>The frame's length is below the header size; the connection is closed.</summary>
    BadLength = 10,

    /// <summary>The server serves its maximum number of connections; the connection is closed.</summary>
    ConnectionLimit = 11,

    /// <summary>A fault of the server itself.</summary>
    Internal = 12,

    /// <summary>The frame did not arrive with exactly the descriptors it declares, or one cannot be mapped (1.1).</summary>
    BadFd = 13,

    /// <summary>A file is shorter than the region mapped from it (1.1).</summary>
    ShortFile = 14,

    /// <summary>Two regions of a CREATE overlap in the guest-physical address space (1.1).</summary>
    Overlap = 15,

    /// <summary>The request is not served by the addressed unit's kind (1.1).</summary>
    WrongKind = 16,
}

/// <summary>Unit kinds of CREATE.</summary>
public enum UnitKind : ushort
{
    /// <summary>An invalidation engine (IOTLB, device TLB, configuration cache) driven by descriptors.</summary>
    Engine = 1,

    /// <summary>An iommufd context over shared user memory (1.1).</summary>
    Iommufd = 2,

    /// <summary>A VT-d unit over shared guest memory (1.1).</summary>
    Vtd = 3,

    /// <summary>An SMMUv3 unit over shared guest memory (1.1).</summary>
    SmmuV3 = 4,
}

/// <summary>Cache selectors of FILL and LOOKUP.</summary>
public enum CacheSelector : ushort
{
    /// <summary>The IOTLB.</summary>
    Iotlb = 1,

    /// <summary>The device TLBs.</summary>
    DeviceTlb = 2,

    /// <summary>The configuration cache.</summary>
    Config = 3,
}

/// <summary>Sizes and fixed numbers of the protocol.</summary>
public static class ProtocolConstants
{
    /// <summary>Major version spoken.</summary>
    public const ushort Major = 1;

    /// <summary>Highest minor version spoken.</summary>
    public const ushort Minor = 1;

    /// <summary>Bytes of a frame header.</summary>
    public const int HeaderSize = 16;

    /// <summary>Bytes of an entry, query, lookup result or descriptor.</summary>
    public const int ItemSize = 32;

    /// <summary>Bytes of the fixed part of FILL, LOOKUP and EXECUTE payloads (and of their replies' prefix).</summary>
    public const int BatchPrefixSize = 8;

    /// <summary>Bytes of an error reply's payload.</summary>
    public const int ErrorPayloadSize = 8;

    /// <summary>Bytes of the HELLO request payload.</summary>
    public const int HelloRequestSize = 8;

    /// <summary>Bytes of the HELLO reply payload (1.1: 40, with max_events_per_request and max_fds_per_frame).</summary>
    public const int HelloReplySize = 40;

    /// <summary>Bytes of the HELLO reply payload when 1.0 is agreed.</summary>
    public const int HelloReplySize10 = 32;

    /// <summary>HELLO server flag: VT-d, SMMUv3 and iommufd units over shared memory are served (1.1).</summary>
    public const uint ServerFlagSharedMemoryUnits = 1;

    /// <summary>Event frames one request may cause; further events are counted as dropped in its reply (1.1).</summary>
    public const int MaxEventsPerRequest = 64;

    /// <summary>Bytes of an event frame's payload (1.1).</summary>
    public const int EventPayloadSize = 32;

    /// <summary>Most shared-memory regions of one CREATE (1.1).</summary>
    public const int MaxRegions = 8;

    /// <summary>Most devices an iommufd CREATE binds (1.1).</summary>
    public const int MaxIommufdDevices = 64;

    /// <summary>Bytes of a VT-d / SMMUv3 / iommufd options prefix, and of one region (1.1).</summary>
    public const int UnitOptionsPrefixSize = 16, RegionSize = 24, IommufdDeviceSize = 8;

    /// <summary>Event delivery: an MSI, a wired interrupt, an SMMU SEV wake-up (1.1).</summary>
    public const byte DeliveryMsi = 1, DeliveryWired = 2, DeliveryWakeUp = 3;

    /// <summary>Bytes of CREATE's fixed payload.</summary>
    public const int CreateRequestSize = 24;

    /// <summary>Bytes of CREATE's reply payload.</summary>
    public const int CreateReplySize = 8;

    /// <summary>Bytes of EXECUTE's reply prefix.</summary>
    public const int ExecuteReplyPrefixSize = 24;

    /// <summary>Bytes of FAULT_PLAN's fixed payload.</summary>
    public const int FaultPlanPrefixSize = 32;

    /// <summary>Bytes of a unit's STATS reply.</summary>
    public const int UnitStatsSize = 64;

    /// <summary>Bytes of the server's STATS reply.</summary>
    public const int ServerStatsSize = 32;

    /// <summary>"No address space" in address-space and PASID fields.</summary>
    public const uint NoAddressSpace = uint.MaxValue;

    /// <summary>IOTLB entry flag: global.</summary>
    public const byte EntryGlobal = 1;

    /// <summary>IOTLB entry flag: paging-structure (table) entry.</summary>
    public const byte EntryTable = 2;

    /// <summary>Lookup result flag: the answering entry is global.</summary>
    public const byte ResultGlobal = 1;
}
