using FastInval.Caches;
using FastInval.Kernels;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// Every kernel in the registry gives the same flush result. Builds a table of tag/first/last columns and one match
/// operator from the input and scans it with every kernel in <see cref="TagScanKernels.Available"/>; the hit lists must
/// be identical and equal to a plain loop over the operator's scalar form, and the resume protocol must make progress.
/// </summary>
/// <remarks>
/// Input layout (all little-endian; missing bytes read as zero):
/// <code>
/// [0]      operator kind: 0 TagOp, 1 TagOpAnyOf, 2 RangeOp (mod 3)
/// [1]      table length n = byte (0..255); padded to a multiple of 8 with zero (invalid) slots
/// [2]      hits-buffer length = 16 + byte % 64
/// [3..]    operator words: TagOp 3 × u64 (mask, value, any); TagOpAnyOf 1 byte (values = 1 + byte % 8), mask, any and
///          that many values as u64; RangeOp 13 × u64
/// then     n slots of 3 × u64 (tag, first, last); a slot's tag has the valid bit forced unless its first byte is 0xFF
/// </code>
/// Tags are masked so the valid bit comes from the slot and the rest is fuzzed freely.
/// </remarks>
public sealed class KernelAgreement : IFuzzer
{
    public void FuzzTarget(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        int kind = input.Byte() % 3;
        int n = input.Byte();
        int hitsLength = TagScan.MinHits + (input.Byte() % 64);
        static TagOp ReadTagOp(ref FuzzInput i) => new(i.UInt64() | TranslationTag.ValidBit, i.UInt64() | TranslationTag.ValidBit, i.UInt64());
        TagOp t1 = default;
        TagOpAnyOf anyOf = default;
        RangeOp r = default;
        switch (kind)
        {
            case 0:
                t1 = ReadTagOp(ref input);
                break;
            case 1:
                int count = 1 + (input.Byte() % TagOpAnyOf.Capacity);
                ulong mask = input.UInt64() | TranslationTag.ValidBit, any = input.UInt64();
                Span<ulong> values = stackalloc ulong[count];
                for (int v = 0; v < count; v++)
                {
                    values[v] = input.UInt64() | TranslationTag.ValidBit;
                }

                anyOf = new TagOpAnyOf(mask, any, values);
                break;
            default:
                r = new RangeOp(input.UInt64() | TranslationTag.ValidBit, input.UInt64() | TranslationTag.ValidBit, input.UInt64(), input.UInt64(),
                    input.UInt64(), input.UInt64(), input.UInt64(), input.UInt64(), input.UInt64(), input.UInt64(), input.UInt64(),
                    input.UInt64(), input.UInt64());
                break;
        }

        int padded = Math.Max(TagScan.Padding, (n + TagScan.Padding - 1) / TagScan.Padding * TagScan.Padding);
        var tags = new ulong[padded];
        var firsts = new ulong[padded];
        var lasts = new ulong[padded];
        for (int s = 0; s < n; s++)
        {
            ulong tag = input.UInt64();
            tags[s] = (tag & 0xFF) == 0xFF ? tag & ~TranslationTag.ValidBit : tag | TranslationTag.ValidBit;
            firsts[s] = input.UInt64();
            lasts[s] = input.UInt64();
        }

        int[]? expected = null;
        foreach (TagScanKernel kernel in TagScanKernels.Available)
        {
            int[] hits = kind switch
            {
                0 => Scan(kernel, in t1, tags, firsts, lasts, hitsLength),
                1 => Scan(kernel, in anyOf, tags, firsts, lasts, hitsLength),
                _ => Scan(kernel, in r, tags, firsts, lasts, hitsLength),
            };
            expected ??= kind switch
            {
                0 => Plain(in t1, tags, firsts, lasts),
                1 => Plain(in anyOf, tags, firsts, lasts),
                _ => Plain(in r, tags, firsts, lasts),
            };
            if (!hits.AsSpan().SequenceEqual(expected))
            {
                throw new OracleException($"{TagScanKernels.Name(kernel)} found [{string.Join(',', hits)}], the plain loop [{string.Join(',', expected)}]");
            }
        }
    }

    private static int[] Scan<TOp>(TagScanKernel kernel, in TOp op, ulong[] tags, ulong[] firsts, ulong[] lasts, int hitsLength)
        where TOp : struct, IMatchOp
    {
        var result = new List<int>();
        var hits = new int[hitsLength];
        nuint i = 0;
        nuint end = (nuint)tags.Length;
        while (i < end)
        {
            nuint before = i;
            int count = TagScan.Run(kernel, in op, ref tags[0], ref firsts[0], ref lasts[0], i, end, hits, out i);
            if (i <= before && count == 0)
            {
                throw new OracleException($"{TagScanKernels.Name(kernel)} made no progress at slot {before}");
            }

            result.AddRange(hits.AsSpan(0, count).ToArray());
        }

        return result.ToArray();
    }

    private static int[] Plain<TOp>(in TOp op, ulong[] tags, ulong[] firsts, ulong[] lasts) where TOp : struct, IMatchOp
    {
        var result = new List<int>();
        for (int s = 0; s < tags.Length; s++)
        {
            if (op.Match(tags[s], firsts[s], lasts[s]))
            {
                result.Add(s);
            }
        }

        return result.ToArray();
    }
}
