using System.Collections.Immutable;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// IOMMU_HWPT_INVALIDATE through <see cref="Iommufd.Ioctl"/> agrees with the naive reference (its own copy rules,
/// VT-d S1 block search, SMMUv3 conversion and decoder, mock drivers, over the reference engine): the input becomes an
/// <see cref="InvalidateCase"/> on the populated <see cref="Topology"/> (VT-d nested HWPTs with and without ATS devices,
/// mock HWPTs, an SMMUv3 vIOMMU with vDEVICEs, a mock vIOMMU, and objects of every other type) and runs through
/// <see cref="IommufdDifferential"/>: errno, header written back (entry_num), the array afterwards (hw_error), every
/// cache and every mock slot must be equal after every call, and nothing may throw.
/// </summary>
/// <remarks>
/// Input layout (missing bytes read as zero):
/// <code>
/// [0]   bit 0 PerEntryHwError mode; bit 1 a device-TLB time-out ordinal follows; bit 2 a completion-error ordinal follows
/// [..]  the ordinals (a byte each, % 24)
/// then up to 12 steps, a selector byte each: even → fill, odd → call
///   fill: engine (bit 0: VT-d / SMMUv3), kind (% 4), domain, address space, source id (palette indices), page (% 32), global bit
///   call: target (% 19: the topology's objects, 0 and an unused id), type (0 native for the target, else a palette of
///         0, 1, 0xdeadbeef, 0x0dadbeef, 0xdead, 7), entry_len (0 natural, 1 natural + 8, else a palette of odd lengths),
///         entry_num (byte % 8, or one of 262,144 / 262,145 / 0xFFFFFFFF when the byte is ≥ 250), pointer kind (% 5),
///         truncate (1..30), framing (% 8: size 32/31/33/40 with tail bytes and argument lengths), __reserved (0 or 1),
///         then min(entry_num, 8) × entry_len raw array bytes
/// </code>
/// </remarks>
public sealed class IommufdInvalidate : IFuzzer
{
    private const int TargetCount = 19;
    private static readonly uint[] Types = [0, 1, InvalidateDataType.Selftest, InvalidateDataType.SelftestInvalid, 0xdead, 7];
    private static readonly uint[] OddLengths = [0, 1, 8, 12, 13, 15, 16, 17, 23, 24, 25, 32, 40];
    private static readonly (int Size, byte Tail, int Arg)[] Framings =
        [(32, 0, 32), (31, 0, 32), (33, 0, 40), (33, 1, 40), (40, 0, 36), (40, 0, 40), (32, 0, 20), (32, 0, 3)];
    private static readonly ushort[] VtdDomains = [2, 3, 4, 9];
    private static readonly ushort[] SmmuDomains = [1, 0x55];
    private static readonly uint[] VtdSpaces = [0, 5];
    private static readonly uint[] SmmuSpaces = [1, 2];
    private static readonly uint[] VtdSids = [0x10, 0x18, 0x20];
    private static readonly uint[] SmmuSids = [0x100, 0x101, 1];

    public void FuzzTarget(ReadOnlySpan<byte> bytes)
    {
        InvalidateCase c = Decode(bytes);
        string? why;
        try
        {
            why = IommufdDifferential.Run(c);
        }
        catch (Exception e)
        {
            throw new OracleException($"exception {e.GetType().Name}: {e.Message}\ncase: {c}", e);
        }

        if (why is not null)
        {
            throw new OracleException($"{why}\ncase: {c}");
        }
    }

    /// <summary>Decodes an input into a case.</summary>
    public static InvalidateCase Decode(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        byte head = input.Byte();
        bool hwError = (head & 1) != 0;
        ImmutableArray<ulong> timeouts = (head & 2) != 0 ? [input.Byte() % 24UL] : [];
        ImmutableArray<ulong> ice = (head & 4) != 0 ? [input.Byte() % 24UL] : [];
        var steps = ImmutableArray.CreateBuilder<object>();
        while (input.HasMore && steps.Count < 12)
        {
            steps.Add((input.Byte() & 1) == 0 ? Fill(ref input) : Call(ref input, hwError));
        }

        return new InvalidateCase(hwError, timeouts, ice, steps.ToImmutable());
    }

    private static Fill Fill(ref FuzzInput input)
    {
        int engine = input.Byte() & 1;
        int kind = input.Byte() % 4;
        ushort domain = engine == 0 ? input.Pick<ushort>(VtdDomains) : input.Pick<ushort>(SmmuDomains);
        uint space = engine == 0 ? input.Pick<uint>(VtdSpaces) : input.Pick<uint>(SmmuSpaces);
        uint sid = engine == 0 ? input.Pick<uint>(VtdSids) : input.Pick<uint>(SmmuSids);
        ulong page = input.Byte() % 32UL;
        bool global = (input.Byte() & 1) != 0;
        return new Fill(engine, kind, domain, space, sid, page, global);
    }

    private static InvalidateCall Call(ref FuzzInput input, bool hwError)
    {
        int target = input.Byte() % TargetCount;
        int family = target switch { 0 or 1 or 2 => 0, 3 or 4 => 1, 6 => 2, 7 => 3, _ => 4 };
        byte typeChoice = input.Byte();
        uint nativeType = family switch { 1 or 3 => InvalidateDataType.Selftest, 2 => 1u, _ => 0u };
        uint type = typeChoice == 0 ? nativeType : Types[typeChoice % Types.Length];
        uint natural = family switch { 0 => 24u, 1 => hwError ? 16u : 8u, 2 => 16u, 3 => 12u, _ => 24u };
        byte lenChoice = input.Byte();
        uint entryLen = lenChoice switch { 0 => natural, 1 => natural + 8, _ => OddLengths[lenChoice % OddLengths.Length] };
        byte numChoice = input.Byte();
        uint entryNum = numChoice >= 250 ? (numChoice % 3) switch { 0 => 262_144u, 1 => 262_145u, _ => 0xFFFF_FFFFu } : numChoice % 8u;
        var pointer = (PointerKind)(input.Byte() % 5);
        int truncate = 1 + (input.Byte() % 30);
        (int size, byte tail, int arg) = Framings[input.Byte() % Framings.Length];
        uint reserved = (uint)(input.Byte() & 1);
        int arrayLength = (int)(Math.Min(entryNum, 8u) * entryLen);
        byte[] array = new byte[Math.Max(1, arrayLength)];
        input.Bytes(array.AsSpan(0, arrayLength));
        return new InvalidateCall(target, type, entryLen, entryNum, pointer, size, tail, arg, reserved, [.. array], truncate);
    }
}
