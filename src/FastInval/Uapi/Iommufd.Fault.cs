using System.Runtime.InteropServices;

namespace FastInval.Uapi;

/// <summary>
/// IOMMU_FAULT_QUEUE_ALLOC and its file (eventq.c): a fault object whose descriptor delivers the I/O page faults of the
/// devices attached to HWPTs allocated with IOMMU_HWPT_FAULT_ID_VALID, as 40-byte <c>struct iommu_hwpt_pgfault</c>
/// records (read), and takes 8-byte <c>struct iommu_hwpt_page_response</c>s (write). The descriptor is a real file
/// descriptor of the process (a memfd used as a token); its reads and writes are <see cref="ReadFaults"/> and
/// <see cref="WriteFaultResponses"/> (the preload library routes read(2)/write(2) on it there), its close
/// <see cref="CloseFaultFile"/>.
/// </summary>
public sealed partial class Iommufd
{
    /// <summary>sizeof(struct iommu_hwpt_pgfault).</summary>
    public const int PageFaultRecordSize = 40;

    /// <summary>sizeof(struct iommu_hwpt_page_response).</summary>
    public const int PageResponseSize = 8;

    private const uint PgfaultFlagPasidValid = 1u << 0;
    private const uint PgfaultFlagLastPage = 1u << 1;
    private const uint PageResponseSuccess = 0;
    private const uint PageResponseInvalid = 1;
    private const uint MfdCloexec = 1;

    /// <summary>
    /// IOMMU_FAULT_QUEUE_ALLOC: flags must be 0 (EOPNOTSUPP); a fault object gets the lowest free id and a descriptor
    /// (memfd_create; its errno on failure), which holds a reference on the object until it is closed (so DESTROY of the
    /// object is EBUSY while the descriptor is open, as the kernel's file holds one); answer out_fault_id, out_fault_fd.
    /// </summary>
    private int FaultQueueAllocCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        if (UserCopy.U32(cmd, 4) != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        uint id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        int fd = OpenFaultDescriptor();
        if (fd < 0)
        {
            Abort(id);
            return fd;
        }

        var fault = new FaultObject { Descriptor = fd };
        Get(fault); // the file's reference
        UserCopy.PutU32(cmd, 8, id);
        UserCopy.PutU32(cmd, 12, (uint)fd);
        Respond(cmd, arg, size);
        Finalize(id, fault);
        return 0;
    }

    private static unsafe int OpenFaultDescriptor()
    {
        ReadOnlySpan<byte> name = "fastinval-iommufd-fault\0"u8;
        fixed (byte* p = name)
        {
            int fd = MemfdCreate(p, MfdCloexec);
            return fd >= 0 ? fd : -Math.Max(Marshal.GetLastSystemError(), 1);
        }
    }

    /// <summary>
    /// IOMMU_TEST_OP_TRIGGER_IOPF (selftest.c): dev_id (ENOENT); a page request (LAST_PAGE, and PASID_VALID when pasid
    /// is not 0) is routed as the IOMMU core's fault-handler lookup does: a request without a PASID goes to the HWPT
    /// attached to the device's RID; a request with a PASID goes to that PASID's attachment, and, as PASID attachments
    /// are not modelled and the mock and SMMUv3 drivers keep the PASID table in user space, to the RID's HWPT only when
    /// that one is a nested HWPT (VT-d: dropped). The HWPT's fault object (IOMMU_HWPT_FAULT_ID_VALID) queues it; without
    /// one it is dropped. Always 0 after the device lookup.
    /// </summary>
    private int TriggerIopf(ReadOnlySpan<byte> cmd)
    {
        uint devId = UserCopy.U32(cmd, 16);
        if (Lookup(devId) is not DeviceObject device)
        {
            return -Errno.ENOENT;
        }

        uint pasid = UserCopy.U32(cmd, 20);
        HwptObject? target = device.Attached;
        if (pasid != 0 && (device.Driver == Driver.IntelVtd || target is not HwptNestedObject))
        {
            target = null;
        }

        if (target?.Fault is { } fault)
        {
            fault.Deliver.Enqueue(new PageFault
            {
                Flags = PgfaultFlagLastPage | (pasid != 0 ? PgfaultFlagPasidValid : 0),
                DeviceId = devId,
                Pasid = pasid,
                GroupId = UserCopy.U32(cmd, 24),
                Perm = UserCopy.U32(cmd, 28),
                Address = UserCopy.U64(cmd, 32),
            });
        }

        return 0;
    }

    /// <summary>
    /// read(2) on the descriptor of fault object <paramref name="faultId"/>: <paramref name="buffer"/>'s length must be a
    /// multiple of 40 (else -ESPIPE, as the kernel answers); as many queued faults as fit are written as
    /// <c>struct iommu_hwpt_pgfault</c> records (flags, dev_id, pasid, grpid, perm, addr, length 0, and a cookie, the
    /// lowest free one from 1, that the response names) and move to the awaiting-response list. Returns the bytes
    /// written (0 when nothing is queued: the file never blocks), or -EBADF when the id names no fault object with an
    /// open descriptor.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public long ReadFaults(uint faultId, Span<byte> buffer)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ReadFaultsCore(faultId, buffer, toUser: false, 0, (ulong)buffer.Length);
        }
    }

    /// <summary>
    /// <see cref="ReadFaults"/> into the user address space: <paramref name="count"/> bytes at <paramref name="address"/>.
    /// A record that cannot be written is -EFAULT when it is the first (it stays queued), else the bytes written so far.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public long ReadFaultsAt(uint faultId, ulong address, ulong count)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ReadFaultsCore(faultId, default, toUser: true, address, count);
        }
    }

    private long ReadFaultsCore(uint faultId, Span<byte> buffer, bool toUser, ulong address, ulong count)
    {
        if (Lookup(faultId) is not FaultObject { Descriptor: >= 0 } fault)
        {
            return -Errno.EBADF;
        }

        if (count % PageFaultRecordSize != 0)
        {
            return -Errno.ESPIPE;
        }

        Span<byte> record = stackalloc byte[PageFaultRecordSize];
        ulong done = 0;
        while (done < count && fault.Deliver.TryPeek(out PageFault f))
        {
            uint cookie = fault.NextCookie();
            WritePageFault(record, f, cookie);
            if (toUser)
            {
                if (!_space.TryWrite(address + done, record))
                {
                    return done == 0 ? -Errno.EFAULT : (long)done;
                }
            }
            else
            {
                record.CopyTo(buffer[(int)done..]);
            }

            fault.Deliver.Dequeue();
            fault.AwaitingResponse.Add(cookie, f);
            done += PageFaultRecordSize;
        }

        return (long)done;
    }

    /// <summary>
    /// write(2) on the descriptor of fault object <paramref name="faultId"/>: <paramref name="responses"/>' length must be
    /// a multiple of 8 (else -ESPIPE); each <c>struct iommu_hwpt_page_response</c> (cookie, code) must have code SUCCESS
    /// (0) or INVALID (1) and name a fault read and not yet answered (else -EINVAL); answered faults are retired. Stops at
    /// the first bad response: returns the bytes taken before it, or its errno when it is the first; -EBADF when the id
    /// names no fault object with an open descriptor.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public long WriteFaultResponses(uint faultId, ReadOnlySpan<byte> responses)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return WriteFaultResponsesCore(faultId, responses, fromUser: false, 0, (ulong)responses.Length);
        }
    }

    /// <summary><see cref="WriteFaultResponses"/> from the user address space; an unreadable response is -EFAULT when it is
    /// the first, else the bytes taken so far.</summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public long WriteFaultResponsesAt(uint faultId, ulong address, ulong count)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return WriteFaultResponsesCore(faultId, default, fromUser: true, address, count);
        }
    }

    private long WriteFaultResponsesCore(uint faultId, ReadOnlySpan<byte> responses, bool fromUser, ulong address, ulong count)
    {
        if (Lookup(faultId) is not FaultObject { Descriptor: >= 0 } fault)
        {
            return -Errno.EBADF;
        }

        if (count % PageResponseSize != 0)
        {
            return -Errno.ESPIPE;
        }

        Span<byte> response = stackalloc byte[PageResponseSize];
        ulong done = 0;
        while (done < count)
        {
            if (fromUser)
            {
                if (!_space.TryRead(address + done, response))
                {
                    return done == 0 ? -Errno.EFAULT : (long)done;
                }
            }
            else
            {
                responses.Slice((int)done, PageResponseSize).CopyTo(response);
            }

            uint cookie = UserCopy.U32(response, 0);
            uint code = UserCopy.U32(response, 4);
            if ((code != PageResponseSuccess && code != PageResponseInvalid) || !fault.AwaitingResponse.Remove(cookie))
            {
                return done == 0 ? -Errno.EINVAL : (long)done;
            }

            fault.Answered++;
            done += PageResponseSize;
        }

        return (long)done;
    }

    /// <summary>
    /// close(2) of the descriptor of fault object <paramref name="faultId"/>: every fault still queued or awaiting a
    /// response is answered (retired), the descriptor is closed and the file's reference on the object is dropped (the
    /// object itself stays until IOMMU_DESTROY or the iommufd's own close). Returns 0, or -EBADF when the id names no
    /// fault object with an open descriptor.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public int CloseFaultFile(uint faultId)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (Lookup(faultId) is not FaultObject { Descriptor: >= 0 } fault)
            {
                return -Errno.EBADF;
            }

            CloseFaultDescriptor(fault);
            Put(fault);
            return 0;
        }
    }

    /// <summary>Faults queued for reading and faults read but not yet answered, of fault object <paramref name="faultId"/>
    /// (false when the id names no fault object).</summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public bool TryGetFaultCounts(uint faultId, out int queued, out int awaitingResponse)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (Lookup(faultId) is not FaultObject fault)
            {
                queued = awaitingResponse = 0;
                return false;
            }

            queued = fault.Deliver.Count;
            awaitingResponse = fault.AwaitingResponse.Count;
            return true;
        }
    }

    /// <summary>The file descriptor of fault object <paramref name="faultId"/> (what IOMMU_FAULT_QUEUE_ALLOC answered in
    /// out_fault_fd, or, after <see cref="RestoreState"/>, the fresh descriptor the restore opened for it), or -1 when the
    /// id names no fault object or its descriptor is closed.</summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public int FaultDescriptor(uint faultId)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return Lookup(faultId) is FaultObject { Descriptor: >= 0 } fault ? fault.Descriptor : -1;
        }
    }

    private static void CloseFaultDescriptor(FaultObject fault)
    {
        fault.Answered += fault.Deliver.Count + fault.AwaitingResponse.Count;
        fault.Deliver.Clear();
        fault.AwaitingResponse.Clear();
        _ = CloseDescriptor(fault.Descriptor);
        fault.Descriptor = -1;
    }

    /// <summary>At Dispose: the descriptors of fault files still open are closed with the iommufd.</summary>
    private void CloseFaultFiles()
    {
        foreach (IommufdObject? o in _slots)
        {
            if (o is FaultObject { Descriptor: >= 0 } fault)
            {
                CloseFaultDescriptor(fault);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "memfd_create", SetLastError = true)]
    private static unsafe partial int MemfdCreate(byte* name, uint flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int CloseDescriptor(int fd);
}

/// <summary>One I/O page request of a fault queue.</summary>
internal readonly record struct PageFault
{
    public uint Flags { get; init; }
    public uint DeviceId { get; init; }
    public uint Pasid { get; init; }
    public uint GroupId { get; init; }
    public uint Perm { get; init; }
    public ulong Address { get; init; }
}

/// <summary>A fault object (IOMMU_FAULT_QUEUE_ALLOC): its descriptor, the faults to deliver and those awaiting a response.</summary>
internal sealed class FaultObject : IommufdObject
{
    /// <summary>The file descriptor, or -1 once closed.</summary>
    public int Descriptor = -1;

    public readonly Queue<PageFault> Deliver = new();
    public readonly Dictionary<uint, PageFault> AwaitingResponse = [];

    /// <summary>Faults retired: answered by a response, or auto-answered when the descriptor closed.</summary>
    public long Answered;

    public override IommufdObjectType Type => IommufdObjectType.Fault;

    /// <summary>The lowest cookie from 1 not awaiting a response: the kernel allocates cookies in an xarray made with
    /// XA_FLAGS_ALLOC1, so 0 is never one.</summary>
    public uint NextCookie()
    {
        uint cookie = 1;
        while (AwaitingResponse.ContainsKey(cookie))
        {
            cookie++;
        }

        return cookie;
    }
}
