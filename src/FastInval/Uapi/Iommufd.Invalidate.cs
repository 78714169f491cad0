using System.Runtime.CompilerServices;
using FastInval.Internals;
using FastInval.Smmu;
using FastInval.Vtd;

namespace FastInval.Uapi;

/// <summary>IOMMU_HWPT_INVALIDATE: the core (hw_pagetable.c, v6.13+) and the four drivers (VT-d nested, SMMUv3 vIOMMU,
/// mock nested HWPT, mock vIOMMU).</summary>
public sealed partial class Iommufd
{
    /// <summary>KMALLOC_MAX_SIZE with 4 KiB pages and MAX_PAGE_ORDER 10 (x86-64, arm64 4K): a bigger kcalloc fails.</summary>
    private const ulong KmallocMaxSize = 4UL << 20;

    private const int SmmuCommandSize = 16;
    private const int MockHwptEntrySize = 8;
    private const int MockHwptEntrySizeHwError = 16;
    private const int MockViommuEntrySize = 12;
    private const int DefaultBatch = 256;

    private static readonly SmmuFeatures s_smmuFeatures = new();

    /// <summary>The most bytes of an entry array the process-memory path copies in (a longer array that is readable that far
    /// is ENOMEM: the kernel's own drivers stop at 4 MiB for the arrays they copy whole).</summary>
    private const ulong MaxBounce = 16UL << 20;

    private byte[] _bounce = [];

    private InvalidationDescriptor[] _batch = new InvalidationDescriptor[DefaultBatch];
    private InvalidationStatus[] _statuses = new InvalidationStatus[DefaultBatch];
    private ulong[] _indices = new ulong[DefaultBatch]; // request-array entry of each batch descriptor, for the notifiers

    /// <summary>
    /// iommufd_hwpt_invalidate (v6.13+): __reserved (EOPNOTSUPP); a non-empty array needs data_uptr and entry_len (EINVAL);
    /// hwpt_id of any type (ENOENT); a nested HWPT or a vIOMMU goes to its driver (no invalidation op: EOPNOTSUPP),
    /// anything else is EINVAL. entry_num is written back on every one of these paths: 0 before the driver, else what
    /// the driver handled.
    /// </summary>
    private int HwptInvalidateCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        uint hwptId = UserCopy.U32(cmd, 4);
        var array = new UserArray
        {
            Uptr = UserCopy.U64(cmd, 8),
            Type = UserCopy.U32(cmd, 16),
            EntryLen = UserCopy.U32(cmd, 20),
            EntryNum = UserCopy.U32(cmd, 24),
        };
        uint reserved = UserCopy.U32(cmd, 28);
        int rc;
        if (reserved != 0)
        {
            rc = -Errno.EOPNOTSUPP;
            array.EntryNum = 0;
        }
        else if (array.EntryNum != 0 && (array.Uptr == 0 || array.EntryLen == 0))
        {
            rc = -Errno.EINVAL;
            array.EntryNum = 0;
        }
        else
        {
            switch (Lookup(hwptId))
            {
                case null:
                    rc = -Errno.ENOENT;
                    array.EntryNum = 0;
                    break;
                case HwptNestedObject { Driver: Driver.IntelVtd } vtd:
                    rc = _options.VtdErrorReporting == VtdErrorReporting.PerEntryHwError
                        ? VtdInvalidate<HwErrorReporting>(vtd, ref array)
                        : VtdInvalidate<MainlineReporting>(vtd, ref array);
                    break;
                case HwptNestedObject { Driver: Driver.Mock } mock:
                    rc = MockHwptInvalidate(mock, ref array);
                    break;
                case HwptNestedObject:
                    rc = -Errno.EOPNOTSUPP; // SMMUv3 nested domains have no cache_invalidate_user: use the vIOMMU
                    array.EntryNum = 0;
                    break;
                case ViommuObject { Driver: Driver.Mock } mockViommu:
                    rc = MockViommuInvalidate(mockViommu, ref array);
                    break;
                case ViommuObject smmu:
                    rc = SmmuInvalidate(smmu, ref array);
                    break;
                default:
                    rc = -Errno.EINVAL;
                    array.EntryNum = 0;
                    break;
            }
        }

        UserCopy.PutU32(cmd, 24, array.EntryNum);
        Respond(cmd, arg, size);
        return rc;
    }

    // ---- Intel VT-d nested HWPT -----------------------------------------------------------------------

    /// <summary>
    /// intel_nested_cache_invalidate_user: the type must be VTD_S1 (EINVAL, also for an empty array); each entry in turn:
    /// exactly 24 bytes (EINVAL), readable (EFAULT), flags other than LEAF or a non-zero __reserved (EOPNOTSUPP), addr not
    /// 4 KiB aligned or npages = U64_MAX with addr ≠ 0 (EINVAL); then the flush (PASID-based IOTLB of the domain's DID
    /// with PASID 0, and the device TLB of every attached ATS device). Processing stops at the first bad entry; entries
    /// before it are flushed and counted. With PerEntryHwError, offset 20 is hw_error: not checked on input, written
    /// back into every handled entry (ITE for a device-TLB time-out, ICE for a completion error).
    /// </summary>
    private int VtdInvalidate<TReporting>(HwptNestedObject domain, ref UserArray array)
        where TReporting : struct, IReporting
    {
        if (array.Type != InvalidateDataType.VtdS1)
        {
            array.EntryNum = 0;
            return -Errno.EINVAL;
        }

        uint count = array.EntryNum;
        if (count == 0)
        {
            return 0;
        }

        if (array.EntryLen != VtdS1Invalidate.EntrySize)
        {
            array.EntryNum = 0;
            return -Errno.EINVAL;
        }

        int viewRc = AcquireView(array.Uptr, (ulong)count * VtdS1Invalidate.EntrySize, out Span<byte> view);
        if (viewRc != 0)
        {
            array.EntryNum = 0;
            return viewRc;
        }

        InvalidationEngine engine = VtdEngine;
        int perEntry = 1 + domain.AtsCount;
        EnsureBatchCapacity(perEntry);
        Span<InvalidationDescriptor> batch = _batch;
        ushort did = domain.DomainId;
        uint processed = 0;
        uint batchFirst = 0;
        int pending = 0;
        int rc = 0;
        for (uint i = 0; i < count; i++)
        {
            ulong offset = (ulong)i * VtdS1Invalidate.EntrySize;
            if (offset + VtdS1Invalidate.EntrySize > (ulong)view.Length)
            {
                rc = -Errno.EFAULT;
                break;
            }

            ReadOnlySpan<byte> entry = view.Slice((int)offset, VtdS1Invalidate.EntrySize);
            ulong addr = UserCopy.U64(entry, VtdS1Invalidate.AddressOffset);
            ulong npages = UserCopy.U64(entry, VtdS1Invalidate.PageCountOffset);
            uint flags = UserCopy.U32(entry, VtdS1Invalidate.FlagsOffset);
            if ((flags & ~VtdS1Invalidate.FlagLeaf) != 0 || (!TReporting.HwError && UserCopy.U32(entry, VtdS1Invalidate.LastWordOffset) != 0))
            {
                rc = -Errno.EOPNOTSUPP;
                break;
            }

            if ((addr & 0xFFF) != 0 || (npages == ulong.MaxValue && addr != 0))
            {
                rc = -Errno.EINVAL;
                break;
            }

            if (pending + perEntry > batch.Length)
            {
                int failed = FlushVtd<TReporting>(engine, view, batchFirst, pending, perEntry);
                if (failed >= 0)
                {
                    array.EntryNum = batchFirst + (uint)failed;
                    return -Errno.EIO;
                }

                batchFirst = i;
                pending = 0;
            }

            int entryStart = pending;
            int mask = VtdAddressMask.Compute(addr, npages, out ulong block);
            ulong first = 0, last = ulong.MaxValue;
            if (mask >= VtdAddressMask.All)
            {
                batch[pending++] = InvalidationDescriptor.IotlbAddressSpace(did, 0, StageMask.FirstStage);
            }
            else
            {
                (first, last) = VtdDescriptorDecoder.MaskRange(block, mask); // the queue's AM block, shared with Vtd/
                batch[pending++] = InvalidationDescriptor.IotlbRange(did, 0, first, last,
                    leafOnly: (flags & VtdS1Invalidate.FlagLeaf) != 0, includeGlobal: true, stages: StageMask.FirstStage);
            }

            for (int d = 0; d < domain.AtsCount; d++)
            {
                batch[pending++] = InvalidationDescriptor.DeviceTlb(domain.AtsSourceIds[d], AddressSpace.None, first, last);
            }

            _indices.AsSpan(entryStart, pending - entryStart).Fill(i);

            processed++;
        }

        if (pending != 0)
        {
            int failed = FlushVtd<TReporting>(engine, view, batchFirst, pending, perEntry);
            if (failed >= 0)
            {
                array.EntryNum = batchFirst + (uint)failed;
                return -Errno.EIO;
            }
        }

        array.EntryNum = processed;
        if (TReporting.HwError)
        {
            int written = WriteBack(array.Uptr, view, (ulong)processed * VtdS1Invalidate.EntrySize);
            rc = rc != 0 ? rc : written;
        }

        return rc;
    }

    /// <summary>Executes the pending entries and reports their device-TLB errors; returns the index (within the batch) of
    /// the first entry the engine refused as malformed, or -1.</summary>
    private int FlushVtd<TReporting>(InvalidationEngine engine, Span<byte> view, uint firstEntry, int pending, int perEntry)
        where TReporting : struct, IReporting
    {
        Span<InvalidationStatus> statuses = _statuses.AsSpan(0, pending);
        if (!ExecuteChecked(engine, _batch.AsSpan(0, pending), statuses, _indices))
        {
            return statuses.IndexOf(InvalidationStatus.Invalid) / perEntry;
        }

        if (!TReporting.HwError)
        {
            return -1; // merged Linux: device-TLB failures have no channel to user space
        }

        int entries = pending / perEntry;
        for (int e = 0; e < entries; e++)
        {
            uint hwError = 0;
            for (int d = 1; d < perEntry; d++)
            {
                hwError |= statuses[(e * perEntry) + d] switch
                {
                    InvalidationStatus.TimedOut => VtdS1Invalidate.ErrorIte,
                    InvalidationStatus.CompletionError => VtdS1Invalidate.ErrorIce,
                    _ => 0,
                };
            }

            UserCopy.PutU32(view, (int)(((firstEntry + (uint)e) * (ulong)VtdS1Invalidate.EntrySize) + VtdS1Invalidate.LastWordOffset), hwError);
        }

        return -1;
    }

    /// <summary>Executes a batch; false (counted in <see cref="InternalErrors"/>, asserted in debug builds) when the engine
    /// refused a descriptor as malformed, which the converters never produce.</summary>
    private bool ExecuteChecked(InvalidationEngine engine, Span<InvalidationDescriptor> batch, Span<InvalidationStatus> statuses,
        ReadOnlySpan<ulong> indices)
    {
        TestBatchHook?.Invoke(batch);
        BatchResult result = engine.Execute(batch, statuses, InvalidationSource.Iommufd, indices);
        if (result.Invalid == 0)
        {
            return true;
        }

        FastAssert.True(result.Invalid == 0, "an iommufd converter produced a descriptor the engine rejects");
        _internalErrors += (ulong)result.Invalid;
        return false;
    }

    private void EnsureBatchCapacity(int perEntry)
    {
        if (_batch.Length < perEntry)
        {
            int capacity = Math.Max(perEntry, _batch.Length * 2);
            _batch = new InvalidationDescriptor[capacity];
            _statuses = new InvalidationStatus[capacity];
            _indices = new ulong[capacity];
        }
    }

    // ---- ARM SMMUv3 vIOMMU ---------------------------------------------------------------------------

    /// <summary>
    /// arm_vsmmu_cache_invalidate: the whole array is copied first (kcalloc of entry_num × 16 beyond the kmalloc limit:
    /// ENOMEM with entry_num left as given; type ARM_SMMUV3 and a non-empty array: EINVAL; the full-array copy rules of
    /// §3.4: EFAULT, E2BIG), then each command is converted: only TLBI_NH_ALL/ASID/VA/VAA (VMID forced to the vIOMMU's),
    /// TLBI_NSNH_ALL (rewritten as TLBI_NH_ALL of the VMID), CFGI_CD, CFGI_CD_ALL and ATC_INV (vSID → physical SID through
    /// the vDEVICEs) are accepted; anything else, an unknown vSID, or a command the SMMU would reject as illegal is EIO.
    /// FastInval's deliberate fix: every command before the failing one is executed, so entry_num never counts a command
    /// that was not carried out. An ATC invalidation that times out stops the batch with ETIMEDOUT at its index.
    /// </summary>
    private int SmmuInvalidate(ViommuObject viommu, ref UserArray array)
    {
        if ((ulong)array.EntryNum * SmmuCommandSize > KmallocMaxSize)
        {
            return -Errno.ENOMEM;
        }

        int rc = AcquireFullArray(ref array, InvalidateDataType.ArmSmmuV3, out Span<byte> view);
        rc = rc != 0 ? rc : CheckFullArray(view, ref array, InvalidateDataType.ArmSmmuV3, SmmuCommandSize);
        if (rc != 0)
        {
            return rc;
        }

        InvalidationEngine engine = SmmuEngine;
        Span<byte> command = stackalloc byte[SmmuCommandSize];
        Span<InvalidationDescriptor> batch = _batch;
        int pending = 0;
        uint batchStart = 0;
        uint count = array.EntryNum;
        for (uint i = 0; i < count; i++)
        {
            if (pending == 0)
            {
                batchStart = i; // an internal error in the batch reports entry_num = the batch's first command
            }

            ReadEntry(view, i, array.EntryLen, command);
            ulong c0 = UserCopy.U64(command, 0);
            ulong c1 = UserCopy.U64(command, 8);
            if (!TryConvert(viommu, ref c0, ref c1))
            {
                rc = -Errno.EIO;
            }
            else
            {
                SmmuDecodedCommand decoded = SmmuCommandDecoder.Decode(new SmmuCommand(c0, c1), s_smmuFeatures);
                if (decoded.Kind != SmmuCommandKind.Invalidation)
                {
                    rc = -Errno.EIO; // the physical SMMU would reject it (CERROR_ILL): refused here, before execution
                }
                else if (decoded.Descriptor.Scope == InvalidationScope.DeviceTlb)
                {
                    // An ATC invalidation completes (or not) on its own: execute what precedes it, then it alone.
                    if (!ExecuteChecked(engine, batch[..pending], _statuses, _indices))
                    {
                        array.EntryNum = batchStart;
                        return -Errno.EIO;
                    }

                    pending = 0;
                    InvalidationDescriptor atc = decoded.Descriptor;
                    TestBatchHook?.Invoke(new Span<InvalidationDescriptor>(ref atc));
                    InvalidationStatus status = engine.Execute(in atc, InvalidationSource.Iommufd, i);
                    if (status == InvalidationStatus.Invalid)
                    {
                        FastAssert.True(status != InvalidationStatus.Invalid, "the SMMU decoder produced a descriptor the engine rejects");
                        _internalErrors++;
                        array.EntryNum = i;
                        return -Errno.EIO;
                    }

                    if (status == InvalidationStatus.TimedOut)
                    {
                        rc = -Errno.ETIMEDOUT;
                    }
                }
                else
                {
                    if (pending == batch.Length)
                    {
                        if (!ExecuteChecked(engine, batch, _statuses, _indices))
                        {
                            array.EntryNum = batchStart;
                            return -Errno.EIO;
                        }

                        pending = 0;
                        batchStart = i;
                    }

                    _indices[pending] = i;
                    batch[pending++] = decoded.Descriptor;
                }
            }

            if (rc != 0)
            {
                if (!ExecuteChecked(engine, batch[..pending], _statuses, _indices))
                {
                    array.EntryNum = batchStart;
                    return -Errno.EIO;
                }

                array.EntryNum = i;
                return rc;
            }
        }

        if (!ExecuteChecked(engine, batch[..pending], _statuses, _indices))
        {
            array.EntryNum = batchStart;
            return -Errno.EIO;
        }

        return 0;
    }

    /// <summary>arm_vsmmu_convert_user_cmd: false for an opcode the vIOMMU does not accept or a vSID without a vDEVICE.</summary>
    private static bool TryConvert(ViommuObject viommu, ref ulong c0, ref ulong c1)
    {
        ulong vmid = ((ulong)viommu.Vmid << SmmuCommandLayout.VmidShift) & SmmuCommandLayout.VmidMask;
        switch ((SmmuOpcode)(byte)(c0 & SmmuCommandLayout.OpcodeMask))
        {
            case SmmuOpcode.TlbiNsnhAll:
                (c0, c1) = (SmmuCommand.TlbiNhAll(viommu.Vmid).Dword0, 0);
                return true;
            case SmmuOpcode.TlbiNhAll:
            case SmmuOpcode.TlbiNhAsid:
            case SmmuOpcode.TlbiNhVa:
            case SmmuOpcode.TlbiNhVaa:
                c0 = (c0 & ~SmmuCommandLayout.VmidMask) | vmid;
                return true;
            case SmmuOpcode.AtcInv:
            case SmmuOpcode.CfgiCd:
            case SmmuOpcode.CfgiCdAll:
                if (!viommu.Vdevices.TryGetValue((c0 & SmmuCommandLayout.StreamIdMask) >> SmmuCommandLayout.StreamIdShift, out VdeviceObject? vdevice))
                {
                    return false;
                }

                c0 = (c0 & ~SmmuCommandLayout.StreamIdMask) | ((ulong)vdevice.Device.StreamId << SmmuCommandLayout.StreamIdShift);
                return true;
            default:
                return false;
        }
    }

    // ---- Selftest mock ------------------------------------------------------------------------------

    /// <summary>
    /// mock_domain_cache_invalidate_user: type SELFTEST (EINVAL, also when empty); each entry: the single-entry copy
    /// (exactly 8 bytes, or 16 in the v8 layout: EINVAL; EFAULT), flags other than ALL (EOPNOTSUPP; v8: ALL and
    /// TRIGGER_ERROR, and __reserved must be 0), iotlb_id above 3 (EINVAL, even with ALL); then ALL zeroes every slot,
    /// else slot iotlb_id. v8: TRIGGER_ERROR leaves the IOTLB alone and reports hw_error = FAKE_ERROR for that entry only.
    /// </summary>
    private int MockHwptInvalidate(HwptNestedObject domain, ref UserArray array)
    {
        if (array.Type != InvalidateDataType.Selftest)
        {
            array.EntryNum = 0;
            return -Errno.EINVAL;
        }

        bool v8 = _options.VtdErrorReporting == VtdErrorReporting.PerEntryHwError;
        int entrySize = v8 ? MockHwptEntrySizeHwError : MockHwptEntrySize;
        uint allowed = v8 ? MockSelftest.FlagAll | MockSelftest.FlagTriggerError : MockSelftest.FlagAll;
        int rc = AcquireView(array.Uptr, array.EntryLen == (uint)entrySize ? (ulong)array.EntryNum * (uint)entrySize : 0, out Span<byte> view);
        if (rc != 0)
        {
            array.EntryNum = 0;
            return rc;
        }

        uint processed = 0;
        for (uint i = 0; i < array.EntryNum; i++)
        {
            if (array.EntryLen != (uint)entrySize)
            {
                rc = -Errno.EINVAL;
                break;
            }

            ulong offset = (ulong)i * (uint)entrySize;
            if (offset + (uint)entrySize > (ulong)view.Length)
            {
                rc = -Errno.EFAULT;
                break;
            }

            Span<byte> entry = view.Slice((int)offset, entrySize);
            uint flags = UserCopy.U32(entry, 0);
            uint iotlbId = UserCopy.U32(entry, 4);
            if ((flags & ~allowed) != 0 || (v8 && UserCopy.U32(entry, 12) != 0))
            {
                rc = -Errno.EOPNOTSUPP;
                break;
            }

            if (iotlbId >= MockSelftest.Slots)
            {
                rc = -Errno.EINVAL;
                break;
            }

            uint hwError = 0;
            if ((flags & MockSelftest.FlagTriggerError) != 0)
            {
                hwError = MockSelftest.FakeError;
            }
            else if ((flags & MockSelftest.FlagAll) != 0)
            {
                Array.Clear(domain.MockIotlb);
            }
            else
            {
                domain.MockIotlb[iotlbId] = 0;
            }

            if (v8)
            {
                UserCopy.PutU32(entry, 8, hwError);
            }

            processed++;
        }

        array.EntryNum = processed;
        if (v8)
        {
            int written = WriteBack(array.Uptr, view, (ulong)processed * (uint)entrySize);
            rc = rc != 0 ? rc : written;
        }

        return rc;
    }

    /// <summary>
    /// mock_viommu_cache_invalidate: an empty array of type SELFTEST is a successful probe; kcalloc of entry_num × 12
    /// beyond the kmalloc limit: ENOMEM (entry_num left as given); the full-array copy (type, non-empty, EFAULT, E2BIG);
    /// then each entry: flags other than ALL (EOPNOTSUPP), cache_id above 3 (EINVAL, even with ALL), vdev_id without a
    /// vDEVICE in this vIOMMU (EINVAL); ALL zeroes the device's 4 cache slots, else slot cache_id.
    /// </summary>
    private int MockViommuInvalidate(ViommuObject viommu, ref UserArray array)
    {
        if (array.EntryNum == 0 && array.Type == InvalidateDataType.Selftest)
        {
            return 0;
        }

        if ((ulong)array.EntryNum * MockViommuEntrySize > KmallocMaxSize)
        {
            return -Errno.ENOMEM;
        }

        int rc = AcquireFullArray(ref array, InvalidateDataType.Selftest, out Span<byte> view);
        rc = rc != 0 ? rc : CheckFullArray(view, ref array, InvalidateDataType.Selftest, MockViommuEntrySize);
        if (rc != 0)
        {
            return rc;
        }

        Span<byte> entry = stackalloc byte[MockViommuEntrySize];
        for (uint i = 0; i < array.EntryNum; i++)
        {
            ReadEntry(view, i, array.EntryLen, entry);
            uint flags = UserCopy.U32(entry, 0);
            uint vdevId = UserCopy.U32(entry, 4);
            uint cacheId = UserCopy.U32(entry, 8);
            if ((flags & ~MockSelftest.FlagAll) != 0)
            {
                rc = -Errno.EOPNOTSUPP;
            }
            else if (cacheId >= MockSelftest.Slots)
            {
                rc = -Errno.EINVAL;
            }
            else if (!viommu.Vdevices.TryGetValue(vdevId, out VdeviceObject? vdevice))
            {
                rc = -Errno.EINVAL;
            }
            else if ((flags & MockSelftest.FlagAll) != 0)
            {
                Array.Clear(vdevice.Device.MockCache);
            }
            else
            {
                vdevice.Device.MockCache[cacheId] = 0;
            }

            if (rc != 0)
            {
                array.EntryNum = i;
                return rc;
            }
        }

        return 0;
    }

    // ---- User views -----------------------------------------------------------------------------------

    /// <summary>
    /// The bytes of a user array: over <see cref="UserMemory"/>, the mapping's own bytes from <paramref name="uptr"/> to its
    /// end (read and written in place); over <see cref="ProcessMemory"/>, a copy of the readable prefix of the
    /// <paramref name="needed"/> bytes, in a buffer this file reuses (writes into it reach the process through
    /// <see cref="WriteBack"/>). Either way an access past the view is a fault. Returns 0 or -ENOMEM (see
    /// <see cref="MaxBounce"/>).
    /// </summary>
    private int AcquireView(ulong uptr, ulong needed, out Span<byte> view)
    {
        if (_memory is not null)
        {
            view = _memory.Tail(uptr);
            return 0;
        }

        int n = (int)Math.Min(needed, MaxBounce);
        if (_bounce.Length < n)
        {
            _bounce = new byte[Math.Max(n, (int)Math.Min(MaxBounce, (ulong)_bounce.Length * 2))];
        }

        int readable = _space.ReadPrefix(uptr, _bounce.AsSpan(0, n));
        if (needed > MaxBounce && readable == n)
        {
            view = default;
            return -Errno.ENOMEM;
        }

        view = _bounce.AsSpan(0, readable);
        return 0;
    }

    /// <summary>The view of a whole-copied array (SMMUv3, mock vIOMMU): nothing is read when the type or the count already
    /// makes <see cref="CheckFullArray"/> fail. On -ENOMEM entry_num becomes 0.</summary>
    private int AcquireFullArray(ref UserArray array, uint type, out Span<byte> view)
    {
        ulong needed = array.Type == type && array.EntryNum != 0 ? (ulong)array.EntryNum * array.EntryLen : 0;
        int rc = AcquireView(array.Uptr, needed, out view);
        if (rc != 0)
        {
            array.EntryNum = 0;
        }

        return rc;
    }

    /// <summary>Copies the first <paramref name="length"/> bytes of a view back to user memory (nothing to do over
    /// <see cref="UserMemory"/>, whose view is the memory): 0, or -EFAULT when they are not writable.</summary>
    private int WriteBack(ulong uptr, ReadOnlySpan<byte> view, ulong length) =>
        _memory is not null || length == 0 || _space.TryWrite(uptr, view[..(int)length]) ? 0 : -Errno.EFAULT;

    // ---- Whole-array copy -----------------------------------------------------------------------------

    /// <summary>
    /// iommu_copy_struct_from_full_user_array, as a check that leaves the array where it is: type (EINVAL), entry_num ≠ 0
    /// (EINVAL), then every entry in order with copy_struct_from_user(kernel size, entry_len): a longer entry's extra bytes
    /// must be zero (E2BIG) and readable (EFAULT), then its head must be readable (EFAULT); a shorter entry is
    /// zero-extended (no minimum length). On error entry_num becomes 0.
    /// </summary>
    private static int CheckFullArray(ReadOnlySpan<byte> view, ref UserArray array, uint type, int kernelSize)
    {
        int rc = array.Type != type || array.EntryNum == 0 ? -Errno.EINVAL : CheckEntries(view, array.EntryNum, array.EntryLen, kernelSize);
        if (rc != 0)
        {
            array.EntryNum = 0;
        }

        return rc;
    }

    private static int CheckEntries(ReadOnlySpan<byte> view, uint count, ulong len, int kernelSize)
    {
        if (len == (ulong)kernelSize)
        {
            return count * len <= (ulong)view.Length ? 0 : -Errno.EFAULT; // one bulk copy
        }

        for (uint i = 0; i < count; i++)
        {
            ulong offset = i * len;
            ReadOnlySpan<byte> entry = offset <= (ulong)view.Length ? view[(int)offset..] : default;
            if (len > (ulong)kernelSize)
            {
                int rc = UserCopy.CheckZeroed(entry, (ulong)kernelSize, len);
                if (rc != 0)
                {
                    return rc;
                }
            }

            if ((ulong)entry.Length < Math.Min(len, (ulong)kernelSize))
            {
                return -Errno.EFAULT;
            }
        }

        return 0;
    }

    /// <summary>Entry <paramref name="index"/> zero-extended (or cut) to the kernel size; the array was checked readable.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ReadEntry(ReadOnlySpan<byte> view, uint index, uint entryLen, Span<byte> kernel)
    {
        int n = (int)Math.Min(entryLen, (uint)kernel.Length);
        view.Slice((int)((ulong)index * entryLen), n).CopyTo(kernel);
        kernel[n..].Clear();
    }

    /// <summary>struct iommu_user_data_array: the driver's view of the request array; the driver sets EntryNum to the
    /// number of entries handled.</summary>
    private struct UserArray
    {
        public uint Type;
        public ulong Uptr;
        public uint EntryLen;
        public uint EntryNum;
    }

    /// <summary>Compile-time switch between the two VT-d reporting modes (one JIT body each).</summary>
    private interface IReporting
    {
        static abstract bool HwError { get; }
    }

    private struct MainlineReporting : IReporting
    {
        public static bool HwError => false;
    }

    private struct HwErrorReporting : IReporting
    {
        public static bool HwError => true;
    }
}
