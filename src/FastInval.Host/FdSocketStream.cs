using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace FastInval.Host;

/// <summary>
/// The connection's byte stream with file descriptors: every read is a <c>recvmsg</c> on the socket's handle with an
/// SCM_RIGHTS control buffer (a plain <c>recv</c>, as <see cref="NetworkStream"/> does, makes the kernel discard — and
/// close — descriptors sent with the bytes). The read is non-blocking; when nothing is buffered it waits for the socket
/// to become readable with a zero-byte <see cref="Socket.ReceiveAsync(Memory{byte}, SocketFlags, CancellationToken)"/>,
/// so no thread blocks. Writes go through the socket as usual. Descriptors are handed to an <see cref="FdInbox"/> with
/// the stream range they came with.
/// </summary>
internal sealed class FdSocketStream : Stream
{
    private readonly Socket _socket;
    private readonly int _fd;
    private long _received;

    public FdSocketStream(Socket socket, FdInbox inbox)
    {
        _socket = socket;
        _fd = (int)socket.Handle;
        Inbox = inbox;
    }

    public FdInbox Inbox { get; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            int got = ReceiveNow(buffer.Span);
            if (got >= 0)
            {
                return got;
            }

            if (got != -UnixFds.EAgain && got != -UnixFds.EIntr)
            {
                throw new IOException($"recvmsg failed: errno {-got}");
            }

            // Nothing buffered: wait until the socket is readable (a zero-byte receive consumes nothing).
            await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    private int ReceiveNow(Span<byte> buffer)
    {
        Span<int> fds = stackalloc int[UnixFds.ControlFds];
        int got = UnixFds.Receive(_fd, buffer, fds, out int count, out bool truncated);
        if (got < 0)
        {
            return got;
        }

        if (count > 0 || truncated)
        {
            // Descriptors with no byte (got == 0) cannot be claimed by any frame: the inbox closes them.
            Inbox.Add(_received, _received + got, fds[..count], truncated);
        }

        _received += got;
        return got;
    }

    public override void Write(byte[] buffer, int offset, int count) => _socket.Send(buffer.AsSpan(offset, count));

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            int sent = await _socket.SendAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            buffer = buffer[sent..];
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
