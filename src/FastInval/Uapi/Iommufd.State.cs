using System.Buffers.Binary;
using System.Numerics;
using FastInval.Internals;

namespace FastInval.Uapi;

// Migration state and reset of an iommufd context. State image (also in docs/migration.md), version 2 (version 1 is
// still read), every field little-endian. A 32-byte header, then one record per occupied id, in ascending id order:
//   0 u32 magic 0x46554946 ("FIUF")   4 u16 version = 2   6 u16 header size = 32
//   8 u32 image size (header and records)                 12 u32 CRC-32C of the whole image, this field taken as 0
//  16 u32 options: bit 0 Selftest (must equal the target's)  20 u32 VtdErrorReporting (must equal the target's)
//  24 u32 record count   28 u32 reserved (0)
// Record: 0 u16 kind   2 u16 reserved (0)   4 u32 object id   8 u32 payload length   12 payload.
// Kinds (a live object's kind is its IommufdObjectType) and payloads (ids of other records; a list is a u32 count then that many u32 ids):
//   1 IOAS          its paging HWPTs, in creation order (the order automatic domains are searched in)
//   2 HWPT paging   0 u8 driver, 1 u8 flags (0 nest parent, 1 automatic domain, 2 dirty tracking), 2 u16 VMID,
//                   4 u32 fault object (0: none), 8 devices (attach order)
//   3 HWPT nested   0 u8 driver, 1 u8 0, 2 u16 VT-d DID, 4 u32 parent, 8 u32 vIOMMU (0: none), 12 u32 VT-d address width,
//                   16 u64 VT-d flags, 24 u64 VT-d stage-1 table, 32 u32 vSTE config, 36 u32 0, 40 u64 vSTE word 0,
//                   48 u64 vSTE word 1, 56 u32[4] mock IOTLB, 72 u32 fault object (0: none), 76 devices (attach order)
//   4 device        0 u8 driver, 1 u8 ATS, 2 u16 0, 4 u32 stream id, 8 u32 mock device flags, 12 u32[4] mock cache
//   5 vIOMMU        0 u32 parent (driver and VMID are the parent's)
//   6 vDEVICE       0 u32 vIOMMU, 4 u32 device, 8 u64 virtual id
//   7 selftest      0 u32 mock device
//   8 fault object  0 u8 flags (bit 0 descriptor open), 1 u8 0, 2 u16 0, 4 u32 faults to deliver, 8 u32 faults awaiting a
//                   response, 12 u32 0, 16 u64 answered, 24 the faults to deliver in queue order, then those awaiting a
//                   response by ascending cookie, each a 40-byte struct iommu_hwpt_pgfault (cookie 0 for one to deliver)
// Version 1 (written before fault objects were in the image): no fault records, no fault field in the HWPT records
// (paging devices at 4, nested devices at 72); it is read as before.
//   0x100 tombstone (no payload): the id of a vDEVICE whose device went away, never handed out again
// Users counts are not in the image: they follow from the links, and the restore recomputes them. The caches, the
// engines and the batch buffers are not in it either (see docs/migration.md).
public sealed partial class Iommufd
{
    /// <summary>Bytes of the header every iommufd state image starts with (the records follow it).</summary>
    public const int StateHeaderSize = 32;

    /// <summary>The highest object id a restore accepts: the table is a dense array, so a larger id is refused rather
    /// than allocated for.</summary>
    public const uint StateMaxId = (1u << 24) - 1;

    private const uint StateMagic = 0x46554946; // "FIUF"
    private const ushort StateVersion = 2, StateVersionNoFaults = 1;
    private const int RecordHeaderSize = 12;
    private const int CrcOffset = 12;
    private const uint OptionSelftest = 1;
    private const byte PagingNestParent = 1, PagingAutoDomain = 2, PagingDirtyTracking = 4;
    private const int PagingFixed = 12, NestedFixed = 80, DeviceSize = 28, ViommuSize = 4, VdeviceSize = 16, SelftestSize = 4;
    private const int PagingFault = 4, NestedFault = 72, FaultFixed = 24;
    private const byte FaultDescriptorOpen = 1;

    private bool _dispatching;

    /// <summary>The record kind of a tombstoned id; a live object's record kind is its <see cref="IommufdObjectType"/>.</summary>
    private const IommufdObjectType TombstoneRecord = (IommufdObjectType)0x100;

    /// <summary>The bytes <see cref="SaveState"/> needs for the context as it is now (it changes with every object
    /// created or destroyed).</summary>
    /// <exception cref="InvalidOperationException">Asked from inside an ioctl (a notifier or device-TLB callback).</exception>
    /// <exception cref="ObjectDisposedException">The context is disposed.</exception>
    public int StateSize
    {
        get
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                ThrowIfDispatching();
                return MeasureState();
            }
        }
    }

    /// <summary>Writes the context's state image to <paramref name="destination"/> and returns its size (what
    /// <see cref="StateSize"/> answered, with no ioctl in between). The image holds the object table: every object with
    /// its id, fields and links, tombstoned ids, and the options the destination must match. The format is documented in
    /// docs/migration.md. User memory is not in it: objects record user and guest addresses, not what lies there.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than the image.</exception>
    /// <exception cref="InvalidOperationException">Called from inside an ioctl (a notifier or device-TLB callback).</exception>
    /// <exception cref="ObjectDisposedException">The context is disposed.</exception>
    public int SaveState(Span<byte> destination)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfDispatching();
            int size = MeasureState();
            StateImage.CheckDestination(destination, size, "iommufd");
            Span<byte> s = destination[..size];
            s.Clear();
            StateImage.WriteHeader(s, StateMagic, StateVersion, StateHeaderSize);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], _options.Selftest ? OptionSelftest : 0);
            BinaryPrimitives.WriteUInt32LittleEndian(s[20..], (uint)_options.VtdErrorReporting);
            int at = StateHeaderSize;
            uint count = 0;
            for (uint id = 1; id < (uint)_slots.Length; id++)
            {
                if (_slots[id] is { } o)
                {
                    at += WriteRecord(s[at..], id, o);
                    count++;
                }
            }

            BinaryPrimitives.WriteUInt32LittleEndian(s[24..], count);
            BinaryPrimitives.WriteUInt32LittleEndian(s[CrcOffset..], ImageCrc(s));
            return size;
        }
    }

    /// <summary>Fills a fresh context (just opened, or after <see cref="Reset"/>) with the object table of the image
    /// in <paramref name="image"/> (from <see cref="SaveState"/> of a context with the same <see cref="IommufdOptions.Selftest"/>
    /// and <see cref="IommufdOptions.VtdErrorReporting"/>): every later ioctl answers with the same ids, errnos and
    /// write-backs as the source would have. A fault object whose descriptor was open gets a fresh descriptor (a new
    /// memfd, as at IOMMU_FAULT_QUEUE_ALLOC, holding the file's reference); the VMM learns it from
    /// <see cref="FaultDescriptor"/>. The caches are not touched. The image is checked whole before anything
    /// changes: a bad image leaves the context as it was.</summary>
    /// <exception cref="ArgumentException">The image is short or longer than its header says, has another magic,
    /// version (1 and 2 are read) or header size, a wrong checksum, other options, an unknown record kind, or describes a table no context
    /// can hold (ids out of order or above <see cref="StateMaxId"/>, a link to a missing object or one of the wrong type,
    /// an object linked twice, a field outside its values, a fault record whose counts do not fit its length or whose
    /// cookies repeat).</exception>
    /// <exception cref="IOException">A fresh descriptor for a fault object whose descriptor was open could not be opened
    /// (memfd_create failed); nothing changed.</exception>
    /// <exception cref="InvalidOperationException">The context already has objects or tombstoned ids, or the call comes
    /// from inside an ioctl (a notifier or device-TLB callback).</exception>
    /// <exception cref="ObjectDisposedException">The context is disposed.</exception>
    public void RestoreState(ReadOnlySpan<byte> image)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfDispatching();
            for (int id = 1; id < _slots.Length; id++)
            {
                if (_slots[id] is not null)
                {
                    throw new InvalidOperationException("restore the iommufd state into a fresh context (just opened, or after Reset)");
                }
            }

            bool v1 = image.Length >= StateImage.HeaderSize && StateImage.U32(image, 0) == StateMagic &&
                      BinaryPrimitives.ReadUInt16LittleEndian(image[4..]) == StateVersionNoFaults;
            StateImage.CheckHeader(image, StateMagic, v1 ? StateVersionNoFaults : StateVersion, StateHeaderSize, "iommufd");
            uint size = StateImage.U32(image, 8);
            if (size < StateHeaderSize || size != image.Length)
            {
                BadImage($"its header says {size} bytes, {image.Length} were given");
            }

            if (StateImage.U32(image, CrcOffset) != ImageCrc(image))
            {
                BadImage("the checksum does not match");
            }

            uint options = StateImage.U32(image, 16), reporting = StateImage.U32(image, 20);
            if (options != (_options.Selftest ? OptionSelftest : 0) || reporting != (uint)_options.VtdErrorReporting)
            {
                BadImage($"it is from a context with options 0x{options:x} and VT-d error reporting {reporting}; this one has " +
                         $"Selftest = {_options.Selftest}, {_options.VtdErrorReporting}");
            }

            if (StateImage.U32(image, 28) != 0)
            {
                BadImage("a reserved field is not 0");
            }

            var restored = new RestoredTable(image, StateImage.U32(image, 24), _options.Selftest, v1);
            OpenRestoredFaultDescriptors(restored.Slots);
            _slots = restored.Slots;
            _vtdDomainIds.Clear();
            _vtdDomainIds.UnionWith(restored.DomainIds);
            _smmuVmids.Clear();
            _smmuVmids.UnionWith(restored.Vmids);
            foreach (IommufdObject? o in _slots)
            {
                if (o is HwptNestedObject nested)
                {
                    nested.RebuildAtsList();
                    EnsureBatchCapacity(1 + nested.AtsCount);
                }
            }
        }
    }

    /// <summary>Returns the context to the state of a freshly opened file: every object is destroyed (host-bound devices
    /// included: the VMM binds them again, as after reopening /dev/iommu), tombstones are cleared, ids restart at 1, the
    /// VT-d DIDs and SMMUv3 VMIDs are all free again, and the engines' caches are emptied. The engines themselves stay
    /// (with their subscriptions and fault plans); their device-TLB fault ordinal belongs to them and is kept, as is
    /// <see cref="InternalErrors"/>, a host diagnostic.</summary>
    /// <exception cref="InvalidOperationException">Called from inside an ioctl (a notifier or device-TLB callback).</exception>
    /// <exception cref="ObjectDisposedException">The context is disposed.</exception>
    public void Reset()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfDispatching();
            CloseFaultFiles();
            _slots = new IommufdObject?[16];
            _vtdDomainIds.Clear();
            _smmuVmids.Clear();
            EmptyCaches(_vtdEngine);
            EmptyCaches(_smmuEngine);

            static void EmptyCaches(InvalidationEngine? engine)
            {
                engine?.Iotlb.Clear();
                engine?.DeviceTlb.Clear();
                engine?.ConfigCache.Clear();
            }
        }
    }

    private void ThrowIfDispatching()
    {
        if (_dispatching)
        {
            throw new InvalidOperationException("the iommufd state cannot be saved, restored or reset from inside one of its ioctls");
        }
    }

    private int MeasureState()
    {
        long size = StateHeaderSize;
        for (int id = 1; id < _slots.Length; id++)
        {
            if (_slots[id] is { } o)
            {
                size += RecordHeaderSize + PayloadSize(o);
            }
        }

        return size <= int.MaxValue ? (int)size : throw new InvalidOperationException("the object table is too large for a state image");
    }

    private static int PayloadSize(IommufdObject o) => o switch
    {
        IoasObject ioas => 4 + (4 * ioas.Hwpts.Count),
        HwptPagingObject p => PagingFixed + (4 * p.Devices.Count),
        HwptNestedObject n => NestedFixed + (4 * n.Devices.Count),
        FaultObject f => FaultFixed + (PageFaultRecordSize * (f.Deliver.Count + f.AwaitingResponse.Count)),
        DeviceObject => DeviceSize,
        ViommuObject => ViommuSize,
        VdeviceObject => VdeviceSize,
        SelftestObject => SelftestSize,
        _ when o == PlaceholderObject.Tombstone => 0,
        _ => throw new InvalidOperationException("an id is reserved outside an ioctl"),
    };

    /// <summary>Writes one record at the start of <paramref name="s"/> and returns its length.</summary>
    private static int WriteRecord(Span<byte> s, uint id, IommufdObject o)
    {
        int length = PayloadSize(o);
        IommufdObjectType kind = o == PlaceholderObject.Tombstone ? TombstoneRecord : o.Type;
        BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)kind);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], id);
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], (uint)length);
        Span<byte> p = s.Slice(RecordHeaderSize, length);
        switch (o)
        {
            case IoasObject ioas:
                WriteIds(p, ioas.Hwpts);
                break;
            case HwptPagingObject paging:
                p[0] = (byte)paging.Driver;
                p[1] = (byte)((paging.NestParent ? PagingNestParent : 0) | (paging.AutoDomain ? PagingAutoDomain : 0) |
                              (paging.DirtyTracking ? PagingDirtyTracking : 0));
                BinaryPrimitives.WriteUInt16LittleEndian(p[2..], paging.Vmid);
                BinaryPrimitives.WriteUInt32LittleEndian(p[PagingFault..], paging.Fault?.Id ?? 0);
                WriteIds(p[(PagingFault + 4)..], paging.Devices);
                break;
            case HwptNestedObject n:
                p[0] = (byte)n.Driver;
                BinaryPrimitives.WriteUInt16LittleEndian(p[2..], n.DomainId);
                BinaryPrimitives.WriteUInt32LittleEndian(p[4..], n.Parent.Id);
                BinaryPrimitives.WriteUInt32LittleEndian(p[8..], n.Viommu?.Id ?? 0);
                BinaryPrimitives.WriteUInt32LittleEndian(p[12..], n.VtdAddressWidth);
                BinaryPrimitives.WriteUInt64LittleEndian(p[16..], n.VtdFlags);
                BinaryPrimitives.WriteUInt64LittleEndian(p[24..], n.VtdPageTable);
                BinaryPrimitives.WriteUInt32LittleEndian(p[32..], n.SteConfig);
                BinaryPrimitives.WriteUInt64LittleEndian(p[40..], n.Ste0);
                BinaryPrimitives.WriteUInt64LittleEndian(p[48..], n.Ste1);
                WriteSlots(p[56..], n.MockIotlb);
                BinaryPrimitives.WriteUInt32LittleEndian(p[NestedFault..], n.Fault?.Id ?? 0);
                WriteIds(p[(NestedFault + 4)..], n.Devices);
                break;
            case DeviceObject d:
                p[0] = (byte)d.Driver;
                p[1] = d.Ats ? (byte)1 : (byte)0;
                BinaryPrimitives.WriteUInt32LittleEndian(p[4..], d.StreamId);
                BinaryPrimitives.WriteUInt32LittleEndian(p[8..], d.MockFlags);
                WriteSlots(p[12..], d.MockCache);
                break;
            case ViommuObject v:
                BinaryPrimitives.WriteUInt32LittleEndian(p, v.Parent.Id);
                break;
            case VdeviceObject vd:
                BinaryPrimitives.WriteUInt32LittleEndian(p, vd.Viommu.Id);
                BinaryPrimitives.WriteUInt32LittleEndian(p[4..], vd.Device.Id);
                BinaryPrimitives.WriteUInt64LittleEndian(p[8..], vd.VirtualId);
                break;
            case SelftestObject st:
                BinaryPrimitives.WriteUInt32LittleEndian(p, st.Device.Id);
                break;
            case FaultObject f:
                WriteFault(p, f);
                break;
        }

        return RecordHeaderSize + length;
    }

    /// <summary>A fault record: the descriptor flag, the counts, the answered count, then the faults to deliver in queue
    /// order and those awaiting a response by ascending cookie, as the 40-byte records a read gives.</summary>
    private static void WriteFault(Span<byte> p, FaultObject f)
    {
        p[0] = f.Descriptor >= 0 ? FaultDescriptorOpen : (byte)0;
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], (uint)f.Deliver.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], (uint)f.AwaitingResponse.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], (ulong)f.Answered);
        int at = FaultFixed;
        foreach (PageFault fault in f.Deliver)
        {
            WritePageFault(p.Slice(at, PageFaultRecordSize), fault, 0);
            at += PageFaultRecordSize;
        }

        foreach (uint cookie in f.AwaitingResponse.Keys.Order())
        {
            WritePageFault(p.Slice(at, PageFaultRecordSize), f.AwaitingResponse[cookie], cookie);
            at += PageFaultRecordSize;
        }
    }

    /// <summary>A struct iommu_hwpt_pgfault: flags, dev_id, pasid, grpid, perm, 20 u32 0, addr, length 0, cookie (what
    /// <see cref="ReadFaults"/> writes).</summary>
    private static void WritePageFault(Span<byte> record, in PageFault f, uint cookie)
    {
        record.Clear();
        UserCopy.PutU32(record, 0, f.Flags);
        UserCopy.PutU32(record, 4, f.DeviceId);
        UserCopy.PutU32(record, 8, f.Pasid);
        UserCopy.PutU32(record, 12, f.GroupId);
        UserCopy.PutU32(record, 16, f.Perm);
        UserCopy.PutU64(record, 24, f.Address);
        UserCopy.PutU32(record, 36, cookie);
    }

    /// <summary>Gives every restored fault object whose descriptor was open a fresh one (memfd_create, as
    /// IOMMU_FAULT_QUEUE_ALLOC) holding the file's reference; if one cannot be opened, those opened are closed again and
    /// the restore fails with nothing changed.</summary>
    private static void OpenRestoredFaultDescriptors(IommufdObject?[] slots)
    {
        for (int i = 1; i < slots.Length; i++)
        {
            if (slots[i] is FaultObject { Descriptor: RestoredTable.DescriptorToOpen } fault)
            {
                int fd = OpenFaultDescriptor();
                if (fd < 0)
                {
                    for (int j = 1; j < i; j++)
                    {
                        if (slots[j] is FaultObject { Descriptor: >= 0 } opened)
                        {
                            _ = CloseDescriptor(opened.Descriptor);
                            opened.Descriptor = RestoredTable.DescriptorToOpen;
                        }
                    }

                    throw new IOException($"memfd_create for the descriptor of restored fault object {i} failed (errno {-fd})");
                }

                fault.Descriptor = fd;
            }
        }
    }

    private static void WriteIds<T>(Span<byte> p, List<T> objects) where T : IommufdObject
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, (uint)objects.Count);
        for (int i = 0; i < objects.Count; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(p[(4 + (4 * i))..], objects[i].Id);
        }
    }

    private static void WriteSlots(Span<byte> p, uint[] slots)
    {
        for (int i = 0; i < slots.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(p[(4 * i)..], slots[i]);
        }
    }

    /// <summary>CRC-32C (Castagnoli) of the image with its checksum field taken as 0.</summary>
    internal static uint ImageCrc(ReadOnlySpan<byte> image)
    {
        uint crc = StateImage.Crc32C(uint.MaxValue, image[..CrcOffset]);
        crc = BitOperations.Crc32C(crc, 0u);
        return ~StateImage.Crc32C(crc, image[(CrcOffset + 4)..]);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void BadImage(string why) => ThrowHelper.Argument("image", "not a valid iommufd state image: " + why);

    /// <summary>
    /// The object table an image describes, built aside and checked whole: pass 1 makes one object per record with its
    /// own fields; pass 2 resolves the links kind by kind (IOAS lists, vIOMMU parents, vDEVICEs, selftest objects, then
    /// the HWPTs with their parents and attached devices), each link to an object of the right type that nothing else
    /// claims; users counts come from the links (the table's own reference, one per holder, the binder of a device).
    /// </summary>
    private sealed class RestoredTable
    {
        public readonly IommufdObject?[] Slots;
        public readonly HashSet<ushort> DomainIds = [];
        public readonly HashSet<ushort> Vmids = [];

        /// <summary>The descriptor of a restored fault object whose descriptor was open, until the restore opens a fresh one.</summary>
        public const int DescriptorToOpen = -2;

        /// <summary>A version-1 image: no fault records, HWPT records without their fault field.</summary>
        private readonly bool _v1;

        private readonly List<(IommufdObjectType Kind, uint Id, int Offset, int Length)> _records = [];

        private static readonly IommufdObjectType[] s_linkOrder =
        [
            IommufdObjectType.Ioas, IommufdObjectType.Viommu, IommufdObjectType.Vdevice, IommufdObjectType.Selftest,
            IommufdObjectType.HwptPaging, IommufdObjectType.HwptNested,
        ];

        public RestoredTable(ReadOnlySpan<byte> image, uint count, bool selftest, bool v1)
        {
            _v1 = v1;
            uint lastId = 0;
            int at = StateHeaderSize;
            for (uint r = 0; r < count; r++)
            {
                if (image.Length - at < RecordHeaderSize)
                {
                    BadImage($"record {r} of {count} runs past the end");
                }

                var kind = (IommufdObjectType)BinaryPrimitives.ReadUInt16LittleEndian(image[at..]);
                uint id = StateImage.U32(image, at + 4), length = StateImage.U32(image, at + 8);
                if (BinaryPrimitives.ReadUInt16LittleEndian(image[(at + 2)..]) != 0)
                {
                    BadImage($"record {r}: a reserved field is not 0");
                }

                if (id <= lastId || id > StateMaxId)
                {
                    BadImage($"record {r}: id {id} is out of order or above {StateMaxId}");
                }

                if (length > (uint)(image.Length - at - RecordHeaderSize))
                {
                    BadImage($"record {r} (id {id}) runs past the end");
                }

                _records.Add((kind, id, at + RecordHeaderSize, (int)length));
                lastId = id;
                at += RecordHeaderSize + (int)length;
            }

            if (at != image.Length)
            {
                BadImage($"{image.Length - at} bytes follow the last record");
            }

            Slots = new IommufdObject?[Math.Max(16, (int)BitOperations.RoundUpToPowerOf2(lastId + 1))];
            var streams = new HashSet<(Driver, uint)>();
            foreach ((IommufdObjectType kind, uint id, int offset, int length) in _records)
            {
                ReadOnlySpan<byte> p = image.Slice(offset, length);
                IommufdObject o = kind switch
                {
                    IommufdObjectType.Ioas => Sized(new IoasObject(), p, 4 + (4 * (long)ListCount(p, 0)), "IOAS"),
                    IommufdObjectType.HwptPaging => Paging(p, selftest),
                    IommufdObjectType.HwptNested => Nested(p, selftest),
                    IommufdObjectType.Device => Device(p, selftest, streams),
                    IommufdObjectType.Viommu => Sized(new ViommuObject(), p, ViommuSize, "vIOMMU"),
                    IommufdObjectType.Vdevice => new VdeviceObject { VirtualId = StateImage.U64(Sized(p, VdeviceSize, "vDEVICE"), 8) },
                    IommufdObjectType.Selftest => Sized(new SelftestObject(), p, SelftestSize, "selftest"),
                    IommufdObjectType.Fault when !v1 => Fault(p),
                    TombstoneRecord => p.Length == 0 ? PlaceholderObject.Tombstone : Bad<IommufdObject>($"a tombstone with {p.Length} payload bytes"),
                    _ => Bad<IommufdObject>($"id {id} has an unknown record kind {(ushort)kind}"),
                };
                if (o != PlaceholderObject.Tombstone)
                {
                    o.Id = id;
                }

                Slots[id] = o;
            }

            foreach (IommufdObjectType pass in s_linkOrder)
            {
                foreach ((IommufdObjectType kind, uint id, int offset, int length) in _records)
                {
                    if (kind == pass)
                    {
                        Link(Slots[id]!, image.Slice(offset, length));
                    }
                }
            }

            foreach (IommufdObject? o in Slots)
            {
                switch (o)
                {
                    case HwptPagingObject { Ioas: null } p:
                        BadImage($"paging HWPT {p.Id} is in no IOAS's list");
                        break;
                    case DeviceObject { Driver: Driver.Mock, Owner: null } d:
                        BadImage($"mock device {d.Id} has no selftest object");
                        break;
                    case DeviceObject d:
                        d.Users++; // the binder: VFIO for a host device, the selftest object for a mock one
                        break;
                }
            }
        }

        private void Link(IommufdObject o, ReadOnlySpan<byte> p)
        {
            switch (o)
            {
                case IoasObject ioas:
                    for (int i = 0; i < ListCount(p, 0); i++)
                    {
                        if (Find(p, 4 + (4 * i)) is not HwptPagingObject { Ioas: null } hwpt)
                        {
                            BadImage($"IOAS {ioas.Id} lists an id that is not an unclaimed paging HWPT");
                            return;
                        }

                        hwpt.Ioas = ioas;
                        ioas.Hwpts.Add(hwpt);
                        Get(ioas);
                    }

                    break;
                case ViommuObject v:
                    if (Find(p, 0) is not HwptPagingObject { NestParent: true, Driver: Driver.ArmSmmuV3 or Driver.Mock } parent)
                    {
                        BadImage($"vIOMMU {v.Id}: the parent is not an SMMUv3 or mock nest-parent HWPT");
                        return;
                    }

                    v.Parent = parent;
                    v.Driver = parent.Driver;
                    v.Vmid = parent.Vmid;
                    Get(parent);
                    break;
                case VdeviceObject vd:
                    if (Find(p, 0) is not ViommuObject viommu || Find(p, 4) is not DeviceObject { Vdevice: null } device ||
                        device.Driver != viommu.Driver || !viommu.Vdevices.TryAdd(vd.VirtualId, vd))
                    {
                        BadImage($"vDEVICE {vd.Id}: not a vIOMMU and a device of its IOMMU without a vDEVICE, or the virtual id is taken");
                        return;
                    }

                    vd.Viommu = viommu;
                    vd.Device = device;
                    device.Vdevice = vd;
                    Get(viommu);
                    break;
                case SelftestObject st:
                    if (Find(p, 0) is not DeviceObject { Driver: Driver.Mock, Owner: null } mock)
                    {
                        BadImage($"selftest object {st.Id}: not an unowned mock device");
                        return;
                    }

                    st.Device = mock;
                    mock.Owner = st;
                    break;
                case HwptPagingObject paging:
                    LinkFault(paging, p, PagingFault);
                    AttachAll(paging, p, _v1 ? PagingFault : PagingFault + 4);
                    if (paging.AutoDomain && paging.Devices.Count == 0)
                    {
                        BadImage($"automatic domain {paging.Id} has no device (it would have been destroyed)");
                    }

                    break;
                case HwptNestedObject n:
                    IommufdObject? viommuLink = StateImage.U32(p, 8) == 0 ? null : Find(p, 8);
                    if (Find(p, 4) is not HwptPagingObject { NestParent: true } nestParent || nestParent.Driver != n.Driver ||
                        (viommuLink is not null && (viommuLink is not ViommuObject nv || nv.Parent != nestParent)) ||
                        (n.Driver == Driver.IntelVtd && viommuLink is not null) || (n.Driver == Driver.ArmSmmuV3 && viommuLink is null))
                    {
                        BadImage($"nested HWPT {n.Id}: the parent is not a nest parent of its IOMMU, or the vIOMMU is not on that parent");
                        return;
                    }

                    n.Parent = nestParent;
                    n.Viommu = viommuLink as ViommuObject;
                    Get(n.Viommu is null ? nestParent : n.Viommu);
                    LinkFault(n, p, NestedFault);
                    AttachAll(n, p, _v1 ? NestedFault : NestedFault + 4);
                    break;
            }
        }

        /// <summary>The fault object of a HWPT allocated with IOMMU_HWPT_FAULT_ID_VALID (version 2: the u32 at
        /// <paramref name="offset"/>, 0 for none), which the HWPT holds.</summary>
        private void LinkFault(HwptObject hwpt, ReadOnlySpan<byte> p, int offset)
        {
            if (_v1 || StateImage.U32(p, offset) == 0)
            {
                return;
            }

            if (Find(p, offset) is not FaultObject fault)
            {
                BadImage($"HWPT {hwpt.Id}: fault id {StateImage.U32(p, offset)} is not a fault object");
                return;
            }

            hwpt.Fault = fault;
            Get(fault);
        }

        /// <summary>Attaches the devices listed at <paramref name="offset"/>, in order: each must be an unattached device
        /// of the HWPT's IOMMU (and able to track dirty pages, for a dirty-tracking domain).</summary>
        private void AttachAll(HwptObject hwpt, ReadOnlySpan<byte> p, int offset)
        {
            bool dirty = hwpt is HwptPagingObject { DirtyTracking: true };
            for (int i = 0; i < ListCount(p, offset); i++)
            {
                if (Find(p, offset + 4 + (4 * i)) is not DeviceObject { Attached: null } device || device.Driver != hwpt.Driver ||
                    (dirty && (device.MockFlags & MockSelftest.DeviceNoDirty) != 0))
                {
                    BadImage($"HWPT {hwpt.Id} lists an id that is not an unattached device it can hold");
                    return;
                }

                hwpt.Devices.Add(device);
                device.Attached = hwpt;
                Get(hwpt);
                Get(device); // an attached device holds its own object
            }
        }

        private IommufdObject? Find(ReadOnlySpan<byte> p, int offset)
        {
            uint id = StateImage.U32(p, offset);
            return id < (uint)Slots.Length && Slots[id] is { } o && o != PlaceholderObject.Tombstone ? o : null;
        }

        /// <summary>The count of the id list at <paramref name="offset"/>; the record length was checked against it in pass 1.</summary>
        private static int ListCount(ReadOnlySpan<byte> p, int offset) => p.Length >= offset + 4 ? (int)Math.Min(StateImage.U32(p, offset), int.MaxValue / 8) : 0;

        private static T Sized<T>(T o, ReadOnlySpan<byte> p, long expected, string what)
        {
            Sized(p, expected, what);
            return o;
        }

        /// <summary><paramref name="p"/>, after checking that it has the length its kind and lists say.</summary>
        private static ReadOnlySpan<byte> Sized(ReadOnlySpan<byte> p, long expected, string what)
        {
            if (p.Length != expected)
            {
                BadImage($"a {what} record of {p.Length} bytes (expected {expected})");
            }

            return p;
        }

        private static T Bad<T>(string why)
        {
            BadImage(why);
            return default!;
        }

        private HwptPagingObject Paging(ReadOnlySpan<byte> p, bool selftest)
        {
            int fixedSize = _v1 ? PagingFixed - 4 : PagingFixed;
            Sized(p, p.Length >= fixedSize ? fixedSize + (4 * (long)ListCount(p, fixedSize - 4)) : fixedSize, "paging HWPT");
            var driver = (Driver)p[0];
            byte flags = p[1];
            ushort vmid = BinaryPrimitives.ReadUInt16LittleEndian(p[2..]);
            var paging = new HwptPagingObject
            {
                Driver = driver,
                NestParent = (flags & PagingNestParent) != 0,
                AutoDomain = (flags & PagingAutoDomain) != 0,
                DirtyTracking = (flags & PagingDirtyTracking) != 0,
                Vmid = vmid,
            };
            bool smmuParent = driver == Driver.ArmSmmuV3 && paging.NestParent;
            if (!KnownDriver(driver, selftest) || (flags & ~(PagingNestParent | PagingAutoDomain | PagingDirtyTracking)) != 0 ||
                (paging.AutoDomain && (paging.NestParent || paging.DirtyTracking)) || (vmid != 0) != smmuParent ||
                (smmuParent && !Vmids.Add(vmid)))
            {
                BadImage("a paging HWPT with an unknown driver or flags, or a VMID that is not its own");
            }

            return paging;
        }

        private HwptNestedObject Nested(ReadOnlySpan<byte> p, bool selftest)
        {
            int fixedSize = _v1 ? NestedFixed - 4 : NestedFixed;
            Sized(p, p.Length >= fixedSize ? fixedSize + (4 * (long)ListCount(p, fixedSize - 4)) : fixedSize, "nested HWPT");
            var n = new HwptNestedObject
            {
                Driver = (Driver)p[0],
                DomainId = BinaryPrimitives.ReadUInt16LittleEndian(p[2..]),
                VtdAddressWidth = StateImage.U32(p, 12),
                VtdFlags = StateImage.U64(p, 16),
                VtdPageTable = StateImage.U64(p, 24),
                SteConfig = StateImage.U32(p, 32),
                Ste0 = StateImage.U64(p, 40),
                Ste1 = StateImage.U64(p, 48),
            };
            bool mockIotlbZero = true;
            for (int i = 0; i < MockSelftest.Slots; i++)
            {
                n.MockIotlb[i] = StateImage.U32(p, 56 + (4 * i));
                mockIotlbZero &= n.MockIotlb[i] == 0;
            }

            bool vtdZero = n.DomainId == 0 && n.VtdAddressWidth == 0 && n.VtdFlags == 0 && n.VtdPageTable == 0;
            bool steZero = n.SteConfig == 0 && n.Ste0 == 0 && n.Ste1 == 0;
            bool valid = p[1] == 0 && StateImage.U32(p, 36) == 0 && KnownDriver(n.Driver, selftest) && n.Driver switch
            {
                Driver.IntelVtd => n.DomainId >= FirstDomainId && DomainIds.Add(n.DomainId) && steZero && mockIotlbZero,
                Driver.ArmSmmuV3 => vtdZero && mockIotlbZero && ValidVste(n),
                _ => vtdZero && steZero,
            };
            if (!valid)
            {
                BadImage("a nested HWPT with an unknown driver, a DID that is not its own, or fields of another driver");
            }

            return n;
        }

        /// <summary>A vSTE as arm_vsmmu_alloc_domain_nested leaves it: all zero (V = 0), or V with only the allowed fields,
        /// EATS cleared, and the config it was accepted with.</summary>
        private static bool ValidVste(HwptNestedObject n)
        {
            if ((n.Ste0 & SteValid) == 0)
            {
                return n.Ste0 == 0 && n.Ste1 == 0 && n.SteConfig == 0;
            }

            uint config = (uint)((n.Ste0 & SteConfigMask) >> 1);
            return (n.Ste0 & ~SteWord0Allowed) == 0 && (n.Ste1 & ~(SteWord1Allowed & ~SteEats)) == 0 && n.SteConfig == config &&
                   config is SteConfigAbort or SteConfigBypass or SteConfigS1Translate;
        }

        /// <summary>A fault record: its length must be what the counts say; the faults are as TRIGGER_IOPF queues them
        /// (LAST_PAGE, PASID_VALID exactly with a non-zero PASID, the reserved word and length 0), those to deliver with
        /// cookie 0, those awaiting a response with distinct cookies from 1 in ascending order, and none awaiting once the
        /// descriptor is closed (a close answers them all).</summary>
        private static FaultObject Fault(ReadOnlySpan<byte> p)
        {
            if (p.Length < FaultFixed)
            {
                BadImage($"a fault record of {p.Length} bytes (at least {FaultFixed})");
            }

            uint deliver = StateImage.U32(p, 4), awaiting = StateImage.U32(p, 8);
            ulong answered = StateImage.U64(p, 16);
            Sized(p, FaultFixed + (PageFaultRecordSize * ((long)deliver + awaiting)), "fault");
            bool open = p[0] == FaultDescriptorOpen;
            if ((p[0] & ~FaultDescriptorOpen) != 0 || p[1] != 0 || BinaryPrimitives.ReadUInt16LittleEndian(p[2..]) != 0 ||
                StateImage.U32(p, 12) != 0 || answered > long.MaxValue || (!open && awaiting != 0))
            {
                BadImage("a fault record with unknown flags, a non-zero reserved field, an answered count out of range, " +
                         "or faults awaiting a response on a closed descriptor");
            }

            var fault = new FaultObject { Descriptor = open ? DescriptorToOpen : -1, Answered = (long)answered };
            if (open)
            {
                fault.Users++; // the file's reference
            }

            uint lastCookie = 0;
            for (long i = 0; i < deliver + (long)awaiting; i++)
            {
                ReadOnlySpan<byte> r = p.Slice(FaultFixed + (PageFaultRecordSize * (int)i), PageFaultRecordSize);
                uint flags = StateImage.U32(r, 0), pasid = StateImage.U32(r, 8), cookie = StateImage.U32(r, 36);
                bool toDeliver = i < deliver;
                if (flags != (PgfaultFlagLastPage | (pasid != 0 ? PgfaultFlagPasidValid : 0)) || StateImage.U32(r, 20) != 0 ||
                    StateImage.U32(r, 32) != 0 || (toDeliver ? cookie != 0 : cookie <= lastCookie))
                {
                    BadImage($"fault record: page fault {i} has flags, a reserved field, a length or a cookie (duplicated, " +
                             "out of order, or on a fault not yet read) that no queue holds");
                }

                var f = new PageFault
                {
                    Flags = flags,
                    DeviceId = StateImage.U32(r, 4),
                    Pasid = pasid,
                    GroupId = StateImage.U32(r, 12),
                    Perm = StateImage.U32(r, 16),
                    Address = StateImage.U64(r, 24),
                };
                if (toDeliver)
                {
                    fault.Deliver.Enqueue(f);
                }
                else
                {
                    fault.AwaitingResponse.Add(cookie, f);
                    lastCookie = cookie;
                }
            }

            return fault;
        }

        private static DeviceObject Device(ReadOnlySpan<byte> p, bool selftest, HashSet<(Driver, uint)> streams)
        {
            Sized(p, DeviceSize, "device");
            var d = new DeviceObject
            {
                Driver = (Driver)p[0],
                Ats = p[1] == 1,
                StreamId = StateImage.U32(p, 4),
                MockFlags = StateImage.U32(p, 8),
            };
            bool cacheZero = true;
            for (int i = 0; i < MockSelftest.Slots; i++)
            {
                d.MockCache[i] = StateImage.U32(p, 12 + (4 * i));
                cacheZero &= d.MockCache[i] == 0;
            }

            bool valid = p[1] <= 1 && BinaryPrimitives.ReadUInt16LittleEndian(p[2..]) == 0 && KnownDriver(d.Driver, selftest) && d.Driver switch
            {
                Driver.Mock => !d.Ats && d.StreamId == 0 && (d.MockFlags & ~MockDeviceFlagsAllowed) == 0,
                _ => d.MockFlags == 0 && cacheZero && (d.Driver != Driver.IntelVtd || d.StreamId <= 0xFFFF) && streams.Add((d.Driver, d.StreamId)),
            };
            if (!valid)
            {
                BadImage("a device with an unknown driver or flags, fields of another driver, or a stream id bound twice");
            }

            return d;
        }

        private static bool KnownDriver(Driver driver, bool selftest) =>
            driver is Driver.IntelVtd or Driver.ArmSmmuV3 || (driver == Driver.Mock && selftest);
    }
}
