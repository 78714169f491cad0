using FastInval.Smmu;
using FastInval.Tests.Memory;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Tests.Smmu;

/// <summary>An SMMU with a command queue in guest memory, the way a driver sets it up, plus recorded interrupts.</summary>
internal sealed class SmmuRig : IDisposable
{
    public const ulong QueueBase = 0x40_0000;
    public const ulong MsiRegion = 0x80_0000;

    public SmmuRig(int log2Size = 4, SmmuOptions? options = null, bool enable = true, bool smmuEnable = true,
        GuestMemoryKind kind = GuestMemoryKind.Managed)
    {
        Memory = new GuestMemory();
        Queue = GuestSpaces.Pinned(16 << Math.Max(log2Size, 1));
        Space = GuestSpaces.Over(kind, Memory, (QueueBase, Queue), (MsiRegion, MsiPage));
        options ??= new SmmuOptions();
        Smmu = new SmmuV3(Space, new SmmuOptions
        {
            Features = options.Features,
            StreamIdBits = options.StreamIdBits,
            MaxCommandQueueLog2 = options.MaxCommandQueueLog2,
            OutputAddressBits = options.OutputAddressBits,
            FaultPlan = options.FaultPlan,
            Engine = options.Engine,
            DeviceTlbSink = options.DeviceTlbSink,
            Msi = (a, d) =>
            {
                Msis.Add((a, d));
                ConsAtMsi.Add(Cons);
            },
            WiredInterrupt = i =>
            {
                Wired.Add(i);
                ConsAtWired.Add(Cons);
            },
        });
        Log2Size = log2Size;
        Smmu.WriteRegister(CmdqBase, QueueBase | (uint)log2Size, 8);
        Smmu.WriteRegister(IrqCtrl, IrqGerrorEn, 4);
        if (enable)
        {
            Smmu.WriteRegister(Cr0, Cr0CmdqEn | (smmuEnable ? Cr0SmmuEn : 0), 4);
        }
    }

    public GuestMemory Memory { get; }

    /// <summary>What the SMMU reads and writes: <see cref="Memory"/> itself or another kind over the same buffers.</summary>
    public GuestAddressSpace Space { get; }

    public byte[] Queue { get; }

    public byte[] MsiPage { get; } = GuestSpaces.Pinned(0x1000);

    public SmmuV3 Smmu { get; }

    public int Log2Size { get; }

    public List<(ulong Address, uint Data)> Msis { get; } = [];

    public List<SmmuInterrupt> Wired { get; } = [];

    /// <summary>CMDQ_CONS as the MSI callback saw it (read through the register), one per <see cref="Msis"/> entry.</summary>
    public List<uint> ConsAtMsi { get; } = [];

    /// <summary>CMDQ_CONS as the wired-interrupt callback saw it, one per <see cref="Wired"/> entry.</summary>
    public List<uint> ConsAtWired { get; } = [];

    public InvalidationEngine Engine => Smmu.Engine;

    public uint Prod => (uint)Smmu.ReadRegister(CmdqProd, 4);

    public uint Cons => (uint)Smmu.ReadRegister(CmdqCons, 4);

    public uint ConsError => (Cons & ConsErrMask) >> ConsErrShift;

    public uint ConsIndex => Cons & ((2u << Log2Size) - 1);

    public bool ErrorActive => ((Smmu.ReadRegister(Gerror, 4) ^ Smmu.ReadRegister(Gerrorn, 4)) & GerrorCmdqErr) != 0;

    /// <summary>Writes commands at PROD onward (with wrap) and publishes them with one PROD write.</summary>
    public void Submit(params SmmuCommand[] commands)
    {
        uint prod = Prod;
        uint span = (2u << Log2Size) - 1;
        foreach (SmmuCommand c in commands)
        {
            c.Write(Queue.AsSpan((int)((prod & ((1u << Log2Size) - 1)) * 16), 16));
            prod = (prod + 1) & span;
        }

        Smmu.WriteRegister(CmdqProd, prod, 4);
    }

    /// <summary>Overwrites the entry at CONS (what Linux's skip_err does with a CMD_SYNC).</summary>
    public void ReplaceAtCons(SmmuCommand c) => c.Write(Queue.AsSpan((int)((Cons & ((1u << Log2Size) - 1)) * 16), 16));

    /// <summary>Acknowledges every active global error (GERRORN := GERROR), as Linux's gerror handler does.</summary>
    public void Acknowledge() => Smmu.WriteRegister(Gerrorn, Smmu.ReadRegister(Gerror, 4), 4);

    public static SmmuCommand SyncIrq(ulong msiAddress, uint data) => SmmuCommand.Sync(1, msiAddress, data);

    public void Dispose() => Smmu.Dispose();
}
