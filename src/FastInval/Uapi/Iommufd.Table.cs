namespace FastInval.Uapi;

/// <summary>The object table (ids, references, destruction) and device attachment.</summary>
public sealed partial class Iommufd
{
    /// <summary>xa_limit_31b: ids run from 1 to 2^31 − 1.</summary>
    private const uint MaxId = 0x7FFF_FFFF;

    /// <summary>VT-d DIDs handed to domains start at 2 (0 is reserved for caching mode, 1 for SVA: IDA_START_DID).</summary>
    private const int FirstDomainId = 2;

    /// <summary>SMMUv3 VMIDs start at 1 (VMID 0 is the kernel's bypass/abort default).</summary>
    private const int FirstVmid = 1;

    private IommufdObject?[] _slots = new IommufdObject?[16];
    private readonly HashSet<ushort> _vtdDomainIds = [];
    private readonly HashSet<ushort> _smmuVmids = [];

    /// <summary>The live object with this id (null for a free, reserved or tombstoned id).</summary>
    private IommufdObject? Lookup(uint id)
    {
        IommufdObject?[] slots = _slots;
        if (id >= (uint)slots.Length)
        {
            return null;
        }

        IommufdObject? o = slots[id];
        return o is PlaceholderObject ? null : o;
    }

    /// <summary>xa_alloc: reserves the lowest free id in [1, 2^31 − 1] (0 when none is left).</summary>
    private uint AllocateId()
    {
        for (uint i = 1; i < (uint)_slots.Length; i++)
        {
            if (_slots[i] is null)
            {
                _slots[i] = PlaceholderObject.Reserved;
                return i;
            }
        }

        uint next = (uint)_slots.Length;
        if (next > MaxId)
        {
            return 0;
        }

        Array.Resize(ref _slots, (int)Math.Min((long)_slots.Length * 2, (long)MaxId + 1));
        _slots[next] = PlaceholderObject.Reserved;
        return next;
    }

    /// <summary>Makes a reserved id visible with its object.</summary>
    private void Finalize(uint id, IommufdObject o)
    {
        o.Id = id;
        _slots[id] = o;
    }

    /// <summary>Frees a reserved id (a failed allocation); the id is handed out again.</summary>
    private void Abort(uint id) => _slots[id] = null;

    private static void Get(IommufdObject o) => o.Users++;

    private static void Put(IommufdObject o) => o.Users--;

    /// <summary>Takes an object out of the table and releases what it holds.</summary>
    private void Destroy(IommufdObject o)
    {
        _slots[o.Id] = null;
        Release(o);
    }

    private void Release(IommufdObject o)
    {
        if (o is HwptObject { Fault: { } fault })
        {
            Put(fault);
        }

        switch (o)
        {
            case HwptPagingObject p:
                Put(p.Ioas);
                p.Ioas.Hwpts.Remove(p);
                if (p.Vmid != 0)
                {
                    _smmuVmids.Remove(p.Vmid);
                }

                break;
            case HwptNestedObject n:
                Put(n.Viommu is null ? n.Parent : n.Viommu);
                if (n.Driver == Driver.IntelVtd)
                {
                    _vtdDomainIds.Remove(n.DomainId);
                }

                break;
            case ViommuObject v:
                Put(v.Parent);
                break;
            case VdeviceObject vd:
                Put(vd.Viommu);
                vd.Viommu.Vdevices.Remove(vd.VirtualId);
                if (vd.Device.Vdevice == vd)
                {
                    vd.Device.Vdevice = null;
                }

                break;
            case SelftestObject s:
                Unbind(s.Device);
                break;
        }
    }

    /// <summary>The lowest free VT-d DID (0 when the 16-bit space is exhausted).</summary>
    private ushort AllocateDomainId() => AllocateFrom(_vtdDomainIds, FirstDomainId);

    /// <summary>The lowest free SMMUv3 VMID (0 when the 16-bit space is exhausted).</summary>
    private ushort AllocateVmid() => AllocateFrom(_smmuVmids, FirstVmid);

    private static ushort AllocateFrom(HashSet<ushort> used, int first)
    {
        for (int id = first; id <= ushort.MaxValue; id++)
        {
            if (used.Add((ushort)id))
            {
                return (ushort)id;
            }
        }

        return 0;
    }

    /// <summary>Tests: a copy of the 4 IOTLB slots of a mock nested HWPT or the 4 cache slots of a mock device, else null.</summary>
    internal uint[]? MockSlots(uint id)
    {
        lock (_lock)
        {
            return Lookup(id) switch
            {
                HwptNestedObject { Driver: Driver.Mock } n => (uint[])n.MockIotlb.Clone(),
                DeviceObject { Driver: Driver.Mock } d => (uint[])d.MockCache.Clone(),
                _ => null,
            };
        }
    }

    /// <summary>Tests: every slot of the table with its object's type, users and links, one line each.</summary>
    internal string DescribeTable()
    {
        lock (_lock)
        {
            var sb = new System.Text.StringBuilder();
            for (int i = 1; i < _slots.Length; i++)
            {
                IommufdObject? o = _slots[i];
                string what = o switch
                {
                    null => "",
                    PlaceholderObject p => p == PlaceholderObject.Tombstone ? "tombstone" : "reserved",
                    HwptPagingObject p => $"paging ioas={p.Ioas.Id} parent={p.NestParent} auto={p.AutoDomain} vmid={p.Vmid} devs={p.Devices.Count} fault={p.Fault?.Id}",
                    HwptNestedObject n => $"nested {n.Driver} parent={n.Parent.Id} viommu={n.Viommu?.Id} did={n.DomainId} devs={n.Devices.Count} fault={n.Fault?.Id} " +
                                          $"iotlb={string.Join(',', n.MockIotlb)}",
                    DeviceObject d => $"device {d.Driver} sid={d.StreamId} attached={d.Attached?.Id} vdev={d.Vdevice?.Id} cache={string.Join(',', d.MockCache)}",
                    ViommuObject v => $"viommu {v.Driver} parent={v.Parent.Id} vmid={v.Vmid} vdevs={v.Vdevices.Count}",
                    VdeviceObject v => $"vdevice viommu={v.Viommu.Id} dev={v.Device.Id} virt={v.VirtualId}",
                    SelftestObject s => $"selftest dev={s.Device.Id}",
                    FaultObject f => $"fault fd={(f.Descriptor >= 0 ? "open" : "closed")} deliver=[{string.Join(';', f.Deliver)}] " +
                                     $"awaiting=[{string.Join(';', f.AwaitingResponse.OrderBy(e => e.Key))}] answered={f.Answered}",
                    _ => o.Type.ToString(),
                };
                if (o is not null)
                {
                    sb.Append(i).Append(' ').Append(o.Type).Append(" users=").Append(o.Users).Append(' ').AppendLine(what);
                }
            }

            sb.Append("dids=").AppendJoin(',', _vtdDomainIds.Order()).Append(" vmids=").AppendJoin(',', _smmuVmids.Order());
            return sb.ToString();
        }
    }

    /// <summary>Tests: null when every object's <c>users</c> equals 1 plus the holders its links say it has (notes §3.3),
    /// and every link points at a live object; else the first mismatch.</summary>
    internal string? CheckReferenceCounts()
    {
        lock (_lock)
        {
            var expected = new Dictionary<IommufdObject, int>();
            var live = new HashSet<IommufdObject>();
            foreach (IommufdObject? o in _slots)
            {
                if (o is not null and not PlaceholderObject)
                {
                    expected[o] = 1;
                    live.Add(o);
                }
            }

            string? missing = null;
            void Hold(IommufdObject holder, IommufdObject target)
            {
                if (!live.Contains(target))
                {
                    missing ??= $"{holder.Type} {holder.Id} holds a dead {target.Type} {target.Id}";
                    return;
                }

                expected[target]++;
            }

            foreach (IommufdObject o in live)
            {
                if (o is HwptObject { Fault: { } fault })
                {
                    Hold(o, fault);
                }

                if (o is FaultObject { Descriptor: >= 0 } file)
                {
                    expected[file]++; // the open descriptor
                }

                switch (o)
                {
                    case HwptPagingObject p:
                        Hold(p, p.Ioas);
                        break;
                    case HwptNestedObject n:
                        Hold(n, n.Viommu is null ? n.Parent : n.Viommu);
                        break;
                    case ViommuObject v:
                        Hold(v, v.Parent);
                        break;
                    case VdeviceObject vd:
                        Hold(vd, vd.Viommu);
                        break;
                    case DeviceObject d:
                        expected[d]++; // the binder
                        if (d.Attached is { } h)
                        {
                            Hold(d, h);
                            expected[d]++;
                        }

                        break;
                }
            }

            foreach ((IommufdObject o, int users) in expected)
            {
                if (o.Users != users)
                {
                    return $"{o.Type} {o.Id}: users {o.Users}, expected {users}";
                }
            }

            return missing;
        }
    }

    // ---- Attachment ----------------------------------------------------------------------------------

    /// <summary>
    /// iommufd_device_attach / _replace for the RID: pt is an IOAS (automatic domain), a paging or a nested HWPT. Attaching
    /// to the HWPT a device is already on is a no-op; the HWPT it leaves loses a reference and, if it was an automatic
    /// domain that nobody uses any more, is destroyed.
    /// </summary>
    private int AttachOrReplace(DeviceObject device, uint ptId, out HwptObject? attached)
    {
        attached = null;
        switch (Lookup(ptId))
        {
            case null:
                return -Errno.ENOENT;
            case IoasObject ioas:
                return AttachToIoas(device, ioas, out attached);
            case HwptObject hwpt:
            {
                int rc = AttachToHwpt(device, hwpt);
                attached = rc == 0 ? hwpt : null;
                return rc;
            }

            default:
                return -Errno.EINVAL;
        }
    }

    private int AttachToIoas(DeviceObject device, IoasObject ioas, out HwptObject? attached)
    {
        // Automatic domains in creation order; EINVAL from the driver means "incompatible, try the next".
        foreach (HwptPagingObject h in ioas.Hwpts)
        {
            if (h.AutoDomain && (device.Attached == h || CanAttach(device, h) == 0))
            {
                attached = h;
                return AttachToHwpt(device, h);
            }
        }

        // None fits: a new paging domain with flags 0 (the driver cannot refuse that), the next free id.
        attached = null;
        uint id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        var hwpt = new HwptPagingObject { Driver = device.Driver, Ioas = ioas, AutoDomain = true };
        Get(ioas);
        ioas.Hwpts.Add(hwpt);
        Finalize(id, hwpt);
        AttachToHwpt(device, hwpt);
        attached = hwpt;
        return 0;
    }

    /// <summary>The driver's attach checks: same IOMMU; mock dirty-tracking domains need a dirty-capable device; a nested
    /// domain from a vIOMMU needs the device's vDEVICE there (mock, and SMMUv3 translating vSTEs); a VT-d stage-1 table
    /// must be 4- or 5-level (address width 48 or 57; the modelled unit supports both, SRS and EAFS).</summary>
    private static int CanAttach(DeviceObject device, HwptObject hwpt)
    {
        if (hwpt.Driver != device.Driver)
        {
            return -Errno.EINVAL;
        }

        switch (hwpt)
        {
            case HwptPagingObject p:
                return p.DirtyTracking && (device.MockFlags & MockSelftest.DeviceNoDirty) != 0 ? -Errno.EINVAL : 0;
            case HwptNestedObject n when n.Driver == Driver.Mock:
                return n.Viommu is not null && device.Vdevice?.Viommu != n.Viommu ? -Errno.ENOENT : 0;
            case HwptNestedObject n when n.Driver == Driver.IntelVtd:
                return n.VtdAddressWidth is 48 or 57 ? 0 : -Errno.EINVAL;
            case HwptNestedObject n:
                return n.SteConfig == SteConfigS1Translate && device.Vdevice?.Viommu != n.Viommu ? -Errno.ENOENT : 0;
            default:
                return -Errno.EINVAL;
        }
    }

    private int AttachToHwpt(DeviceObject device, HwptObject hwpt)
    {
        if (device.Attached == hwpt)
        {
            return 0;
        }

        int rc = CanAttach(device, hwpt);
        if (rc != 0)
        {
            return rc;
        }

        HwptObject? old = device.Attached;
        hwpt.Devices.Add(device);
        Get(hwpt);
        if (old is null)
        {
            Get(device); // an attached device holds its own object
        }

        device.Attached = hwpt;
        if (hwpt is HwptNestedObject nested)
        {
            nested.RebuildAtsList();
            EnsureBatchCapacity(1 + nested.AtsCount);
        }

        if (old is not null)
        {
            Leave(old, device);
        }

        return 0;
    }

    private void Detach(DeviceObject device)
    {
        HwptObject? old = device.Attached;
        if (old is null)
        {
            return;
        }

        device.Attached = null;
        Put(device);
        Leave(old, device);
    }

    /// <summary>The device leaves <paramref name="hwpt"/>: an automatic domain nobody else holds is destroyed
    /// (iommufd_hw_pagetable_put → try-destroy).</summary>
    private void Leave(HwptObject hwpt, DeviceObject device)
    {
        hwpt.Devices.Remove(device);
        if (hwpt is HwptNestedObject nested)
        {
            nested.RebuildAtsList();
        }

        Put(hwpt);
        if (hwpt is HwptPagingObject { AutoDomain: true } auto && auto.Users == 1)
        {
            Destroy(auto);
        }
    }

    /// <summary>Unbinds a device: detach, then (newest kernels) destroy its vDEVICE and leave that id a tombstone, then
    /// destroy the device object.</summary>
    private void Unbind(DeviceObject device)
    {
        Detach(device);
        if (device.Vdevice is { } vdevice)
        {
            _slots[vdevice.Id] = PlaceholderObject.Tombstone;
            Release(vdevice);
        }

        _slots[device.Id] = null;
    }
}
