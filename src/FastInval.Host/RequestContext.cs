using Microsoft.Extensions.ObjectPool;

namespace FastInval.Host;

/// <summary>Per-request state, taken from an <see cref="ObjectPool{T}"/> for each request and given back after the
/// reply: the buffer a payload that straddles pipe segments is gathered into.</summary>
internal sealed class RequestContext
{
    private byte[] _scratch = [];

    /// <summary>A contiguous copy of <paramref name="payload"/> (the buffer is kept for the next request).</summary>
    public ReadOnlySpan<byte> Gather(in System.Buffers.ReadOnlySequence<byte> payload)
    {
        int length = (int)payload.Length;
        if (_scratch.Length < length)
        {
            _scratch = new byte[Math.Max(length, Math.Min(4096, Array.MaxLength))];
        }

        System.Buffers.BuffersExtensions.CopyTo(payload, _scratch);
        return _scratch.AsSpan(0, length);
    }

    /// <summary>Bytes held.</summary>
    public int ScratchBytes => _scratch.Length;

    /// <summary>Drops a buffer that grew past <paramref name="keepBytes"/>, so idle contexts stay small.</summary>
    public void Trim(int keepBytes)
    {
        if (_scratch.Length > keepBytes)
        {
            _scratch = [];
        }
    }
}

/// <summary>Pool policy of <see cref="RequestContext"/>: contexts come back trimmed to 64 KiB.</summary>
internal sealed class RequestContextPolicy : PooledObjectPolicy<RequestContext>
{
    public const int KeepBytes = 64 * 1024;

    public override RequestContext Create() => new();

    public override bool Return(RequestContext obj)
    {
        obj.Trim(KeepBytes);
        return true;
    }
}
