namespace FastInval.Host;

/// <summary>
/// The file descriptors a connection has received, each batch tagged with the byte range of the stream that the
/// <c>recvmsg</c> carrying it returned. A frame that declares descriptors claims the oldest batch whose range holds the
/// frame's first byte (the kernel hands descriptors out with the read that returns the first byte of the
/// <c>sendmsg</c> they were sent with, and the client sends them with the frame's first byte). Batches no frame can
/// claim any more are closed. Written by the read path, read by the session: one connection, one thread at a time, but
/// locked so that a read-ahead can never race the dispatcher.
/// </summary>
internal sealed class FdInbox : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Queue<Batch> _batches = new();
    private bool _disposed;

    private sealed class Batch(long start, long end, int[] fds, bool truncated)
    {
        public long Start { get; } = start;
        public long End { get; } = end;
        public int[] Fds { get; } = fds;
        public bool Truncated { get; } = truncated;
    }

    /// <summary>Batches not yet claimed or closed.</summary>
    public int Pending
    {
        get
        {
            lock (_gate)
            {
                return _batches.Count;
            }
        }
    }

    /// <summary>Records the descriptors received with stream bytes [<paramref name="start"/>, <paramref name="end"/>).</summary>
    public void Add(long start, long end, ReadOnlySpan<int> fds, bool truncated)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                foreach (int fd in fds)
                {
                    UnixFds.Close(fd);
                }

                return;
            }

            _batches.Enqueue(new Batch(start, end, fds.ToArray(), truncated));
        }
    }

    /// <summary>
    /// Claims the descriptors of the frame starting at stream offset <paramref name="frameStart"/>: exactly
    /// <paramref name="expected"/> of them must have come with it. On success the caller owns the descriptors in
    /// <paramref name="fds"/> and must close them; otherwise whatever came is closed and false returned.
    /// </summary>
    public bool TryClaim(long frameStart, int expected, Span<int> fds)
    {
        lock (_gate)
        {
            ReleaseBefore(frameStart + 1);
            if (_batches.Count == 0 || _batches.Peek().Start > frameStart)
            {
                return false; // nothing arrived with this frame's first byte
            }

            Batch batch = _batches.Dequeue();
            if (batch.Truncated || batch.Fds.Length != expected || expected > fds.Length)
            {
                CloseAll(batch.Fds);
                return false;
            }

            batch.Fds.CopyTo(fds);
            return true;
        }
    }

    /// <summary>The descriptors <see cref="TryClaim"/> would look at for the frame starting at
    /// <paramref name="frameStart"/>, without claiming them (the trace recorder describes them before the frame is
    /// handled): up to <paramref name="fds"/>' length are copied; returns how many came (−1: none came with the frame).
    /// The descriptors stay the inbox's.</summary>
    public int Peek(long frameStart, Span<int> fds, out bool truncated)
    {
        lock (_gate)
        {
            truncated = false;
            foreach (Batch batch in _batches)
            {
                if (batch.End <= frameStart + 1)
                {
                    continue; // what the claim releases first
                }

                if (batch.Start > frameStart)
                {
                    return -1;
                }

                truncated = batch.Truncated;
                batch.Fds.AsSpan(0, Math.Min(batch.Fds.Length, fds.Length)).CopyTo(fds);
                return batch.Fds.Length;
            }

            return -1;
        }
    }

    /// <summary>Closes every batch whose bytes all lie before <paramref name="offset"/>: no frame starting at or after it
    /// can claim them (descriptors sent with a frame that did not declare them).</summary>
    public void ReleaseBefore(long offset)
    {
        lock (_gate)
        {
            while (_batches.Count > 0 && _batches.Peek().End <= offset)
            {
                CloseAll(_batches.Dequeue().Fds);
            }
        }
    }

    private static void CloseAll(int[] fds)
    {
        foreach (int fd in fds)
        {
            UnixFds.Close(fd);
        }
    }

    /// <summary>Closes every descriptor still held; later arrivals are closed at once.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            while (_batches.Count > 0)
            {
                CloseAll(_batches.Dequeue().Fds);
            }
        }
    }
}
