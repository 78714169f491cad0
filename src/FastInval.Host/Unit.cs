using FastInval.Smmu;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Host;

/// <summary>
/// One unit a connection created: its engine (every kind has one: FILL, LOOKUP, EXECUTE, FAULT_PLAN and STATS address
/// it), the front end of a VT-d, SMMUv3 or iommufd unit, the shared memory it was given, the lock that serializes its
/// writers, and its figures.
/// </summary>
internal sealed class Unit : IDisposable
{
    private SharedMapping[] _mappings = [];

    public Unit(uint id, InvalidationEngine engine)
    {
        Id = id;
        Kind = UnitKind.Engine;
        Engine = engine;
    }

    public Unit(uint id, UnitKind kind)
    {
        Id = id;
        Kind = kind;
        Engine = null!; // set by Attach
    }

    /// <summary>The unit's id on the wire.</summary>
    public uint Id { get; }

    /// <summary>What CREATE made.</summary>
    public UnitKind Kind { get; }

    /// <summary>The engine.</summary>
    public InvalidationEngine Engine { get; private set; }

    /// <summary>The VT-d front end (kind VTD).</summary>
    public VtdIommu? Vtd { get; private set; }

    /// <summary>The SMMUv3 front end (kind SMMUV3).</summary>
    public SmmuV3? Smmu { get; private set; }

    /// <summary>The iommufd context (kind IOMMUFD).</summary>
    public Iommufd? Iommufd { get; private set; }

    /// <summary>Guest RAM of a VT-d or SMMUv3 unit: the shared mappings at their guest-physical bases.</summary>
    public NativeGuestMemory? GuestMemory { get; init; }

    /// <summary>User memory of an iommufd unit.</summary>
    public UserMemory? UserMemory { get; init; }

    /// <summary>Where the unit's events go while one of its requests runs (set by the session).</summary>
    public UnitEvents? Events { get; set; }

    /// <summary>Held by writers (FILL, EXECUTE, FAULT_PLAN, REG_WRITE, IOMMUFD_IOCTL, DESTROY): the engine's single-writer
    /// rule. Lookups do not take it.</summary>
    public Lock WriteGate { get; } = new();

    /// <summary>Requests answered without error, CREATE included.</summary>
    public ulong Requests;

    /// <summary>Descriptors executed.</summary>
    public ulong Descriptors;

    /// <summary>Entries offered to FILL.</summary>
    public ulong Fills;

    /// <summary>The unit's shared mappings, in region order (empty for an engine unit).</summary>
    public ReadOnlySpan<SharedMapping> Mappings => _mappings;

    /// <summary>Bytes of shared memory mapped for the unit.</summary>
    public ulong MappedBytes { get; private set; }

    /// <summary>Takes ownership of the unit's shared mappings (unmapped with the unit).</summary>
    public void Own(SharedMapping[] mappings)
    {
        _mappings = mappings;
        MappedBytes = 0;
        foreach (SharedMapping m in mappings)
        {
            MappedBytes += m.Length;
        }
    }

    public void Attach(VtdIommu vtd)
    {
        Vtd = vtd;
        Engine = vtd.Engine;
    }

    public void Attach(SmmuV3 smmu)
    {
        Smmu = smmu;
        Engine = smmu.Engine;
    }

    public void Attach(Iommufd iommufd, IommuKind engineKind)
    {
        Iommufd = iommufd;
        Engine = iommufd.Engine(engineKind);
    }

    /// <summary>Disposes the front end and engine, then removes and unmaps the shared memory.</summary>
    public void Dispose()
    {
        lock (WriteGate)
        {
            if (Vtd is not null)
            {
                Vtd.Dispose();
            }
            else if (Smmu is not null)
            {
                Smmu.Dispose();
            }
            else if (Iommufd is not null)
            {
                Iommufd.Dispose();
            }
            else
            {
                Engine?.Dispose();
            }

            foreach (SharedMapping m in _mappings)
            {
                if (GuestMemory is not null)
                {
                    GuestMemory.Unmap(m.GuestBase);
                }
                else
                {
                    UserMemory?.Unmap(m.GuestBase);
                }

                m.Dispose();
            }

            _mappings = [];
        }
    }
}

/// <summary>One <c>mmap</c> of a received file (MAP_SHARED, read-write), unmapped when disposed; with the trace
/// recorder's copy of its contents when the session is recorded.</summary>
internal sealed unsafe class SharedMapping : IDisposable
{
    private nint _address;
    private nint _shadow;

    public SharedMapping(nint address, ulong length)
    {
        _address = address;
        Length = length;
    }

    /// <summary>The host address.</summary>
    public nint Address => _address;

    /// <summary>Bytes mapped.</summary>
    public ulong Length { get; }

    /// <summary>Guest-physical base (VT-d, SMMUv3) or user address (iommufd) it is mapped at in the unit.</summary>
    public ulong GuestBase { get; set; }

    /// <summary>Offset in the file of the first byte mapped.</summary>
    public ulong FileOffset { get; init; }

    /// <summary>Size of the file when it was passed.</summary>
    public ulong FileSize { get; init; }

    /// <summary>The trace's region index of the file (docs/traces.md §4), or −1 when the session is not recorded.</summary>
    public int TraceRegion { get; init; } = -1;

    /// <summary>The recorder's copy of the mapping as its last MEMORY records left it (0: none, see
    /// <see cref="AllocateShadow"/>).</summary>
    public nint Shadow => _shadow;

    /// <summary>Allocates the recorder's copy, zeroed (a fresh region of a replay is zero). False when there is no
    /// memory for it: the recorder then records the mapping whole at every capture.</summary>
    public bool AllocateShadow()
    {
        if (_shadow == 0)
        {
            try
            {
                _shadow = (nint)System.Runtime.InteropServices.NativeMemory.AllocZeroed((nuint)Length);
            }
            catch (OutOfMemoryException)
            {
                _shadow = 0;
            }
        }

        return _shadow != 0;
    }

    public void Dispose()
    {
        nint a = Interlocked.Exchange(ref _address, 0);
        if (a != 0)
        {
            UnixFds.Unmap(a, Length);
        }

        nint s = Interlocked.Exchange(ref _shadow, 0);
        if (s != 0)
        {
            System.Runtime.InteropServices.NativeMemory.Free((void*)s);
        }
    }
}

/// <summary>A <see cref="System.Buffers.MemoryManager{T}"/> over native memory, for <see cref="UserMemory.Map"/>.</summary>
internal sealed unsafe class NativeMemoryManager(nint address, int length) : System.Buffers.MemoryManager<byte>
{
    public override Span<byte> GetSpan() => new((void*)address, length);

    public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => new((byte*)address + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
