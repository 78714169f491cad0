using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FastInval.Host;

/// <summary>The server could not start: another live server holds the socket path, or the path is not a socket.</summary>
public sealed class ServerStartException : IOException
{
    /// <summary>Creates the exception.</summary>
    public ServerStartException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ServerStartException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ServerStartException(string message, Exception innerException) : base(message, innerException)
    {
    }
}

/// <summary>
/// Serves IOMMU units over a Unix stream socket with the protocol of docs/protocol.md: one <see cref="PipeReader"/> and
/// <see cref="PipeWriter"/> per connection, frames answered in order, units destroyed with their connection.
/// </summary>
/// <remarks>
/// <para><see cref="Start"/> refuses a path a live server holds (it connects first), removes a stale socket file left by a
/// dead server, and creates the socket file with <see cref="ServerOptions.SocketFileMode"/> before it listens.</para>
/// <para><see cref="StopAsync"/> stops accepting, lets every connection answer the whole requests it has already
/// received, closes the connections (destroying their units) and removes the socket file.</para>
/// </remarks>
public sealed class FastInvalServer : IAsyncDisposable
{
    private readonly ServerCore _core;
    private readonly Lock _gate = new();
    private readonly HashSet<Connection> _connections = [];
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task? _acceptLoop;
    private bool _stopped;

    /// <summary>Creates a server (not started).</summary>
    public FastInvalServer(ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The server passes descriptors through as-is and needs a little-endian host.");
        }

        _core = new ServerCore(options);
    }

    /// <summary>The settings.</summary>
    public ServerOptions Options => _core.Options;

    /// <summary>Connections being served.</summary>
    public int ConnectionCount => _core.Connections;

    /// <summary>Units alive, all connections together.</summary>
    public int UnitCount => _core.Units;

    /// <summary>Frames read, all connections together.</summary>
    public long FramesRead => _core.Frames;

    /// <summary>Error replies sent, all connections together.</summary>
    public long ErrorReplies => _core.ErrorReplies;

    /// <summary>Binds the socket and starts accepting. Throws <see cref="ServerStartException"/> when a live server holds
    /// the path or the path exists and is not a socket.</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_listener is not null || _stopped)
            {
                throw new InvalidOperationException("The server was already started.");
            }

            string path = Options.SocketPath;
            RemoveStaleSocket(path);
            var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                listener.Bind(new UnixDomainSocketEndPoint(path));
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(path, Options.SocketFileMode); // before Listen: nobody can connect yet
                }

                listener.Listen(128);
            }
            catch
            {
                listener.Dispose();
                throw;
            }

            _listener = listener;
            _acceptLoop = Task.Run(AcceptLoopAsync);
        }
    }

    private static void RemoveStaleSocket(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            return;
        }

        if (Directory.Exists(path) || !SocketFile.IsSocket(path))
        {
            throw new ServerStartException($"{path} exists and is not a socket; not touching it.");
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            File.Delete(path); // a socket nobody listens on: left by a dead server
            return;
        }

        throw new ServerStartException($"a server is already listening on {path}.");
    }

    private async Task AcceptLoopAsync()
    {
        Socket listener = _listener!;
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                continue; // a failed accept (e.g. the client went away already) does not stop the server
            }

            if (!_core.TryEnterConnection())
            {
                _ = RefuseAsync(client);
                continue;
            }

            var connection = new Connection(this, client);
            lock (_gate)
            {
                _connections.Add(connection);
            }

            connection.Run = Task.Run(connection.RunAsync);
        }
    }

    private async Task RefuseAsync(Socket client)
    {
        try
        {
            var buffer = new ArrayBufferWriter<byte>(32);
            Session.WriteFrameError(buffer, 0, ErrorCode.ConnectionLimit, (uint)Options.MaxConnections);
            await client.SendAsync(buffer.WrittenMemory, SocketFlags.None).ConfigureAwait(false);
            client.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // the client is gone already
        }
        finally
        {
            client.Dispose();
        }
    }

    private void Forget(Connection connection)
    {
        lock (_gate)
        {
            _connections.Remove(connection);
        }

        _core.LeaveConnection();
    }

    /// <summary>Stops accepting, drains every connection (whole requests already received are answered), closes them
    /// and removes the socket file.</summary>
    public async Task StopAsync()
    {
        Connection[] connections;
        Task? acceptLoop;
        lock (_gate)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            _stopping.Cancel();
            _listener?.Dispose();
            acceptLoop = _acceptLoop;
            connections = [.. _connections];
        }

        if (acceptLoop is not null)
        {
            await acceptLoop.ConfigureAwait(false);
        }

        lock (_gate)
        {
            connections = [.. _connections];
        }

        foreach (Connection c in connections)
        {
            c.BeginDrain();
        }

        // A connection whose client stopped reading its replies cannot finish its drain (its flush waits on the
        // socket): after the grace period it is aborted, so a stop always ends.
        Task drained = Task.WhenAll(connections.Select(c => c.Run ?? Task.CompletedTask));
        if (await Task.WhenAny(drained, Task.Delay(DrainTimeout)).ConfigureAwait(false) != drained)
        {
            foreach (Connection c in connections)
            {
                c.Abort();
            }

            await drained.ConfigureAwait(false);
        }

        if (_listener is not null)
        {
            try
            {
                File.Delete(Options.SocketPath);
            }
            catch (IOException)
            {
                // already gone
            }
        }
    }

    /// <summary>How long <see cref="StopAsync"/> lets connections drain before it aborts them.</summary>
    public static TimeSpan DrainTimeout { get; } = TimeSpan.FromSeconds(5);

    /// <summary>Same as <see cref="StopAsync"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    /// <summary>One accepted connection: a pipe pair over the socket's stream and its <see cref="Session"/>.</summary>
    private sealed class Connection
    {
        private readonly FastInvalServer _server;
        private readonly Socket _socket;
        private readonly PipeReader _reader;
        private readonly PipeWriter _writer;
        private volatile bool _draining;

        public Connection(FastInvalServer server, Socket socket)
        {
            _server = server;
            _socket = socket;
            Inbox = new FdInbox();
            var stream = new FdSocketStream(socket, Inbox); // recvmsg: bytes and the descriptors sent with them
            _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 4096, leaveOpen: true));
            _writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
            Stream = stream;
        }

        private FdSocketStream Stream { get; }

        private FdInbox Inbox { get; }

        public Task? Run { get; set; }

        /// <summary>Asks the loop to answer what is buffered and stop.</summary>
        public void BeginDrain()
        {
            _draining = true;
            _reader.CancelPendingRead();
        }

        /// <summary>Closes the socket under a connection that cannot drain: its pending read or flush fails and the loop ends.</summary>
        public void Abort() => _socket.Dispose();

        public async Task RunAsync()
        {
            var session = new Session(_server._core, Inbox, _server.Options.Trace);
            int maxFrames = _server.Options.MaxOutstandingRequests;
            try
            {
                while (true)
                {
                    ReadResult result = await _reader.ReadAsync().ConfigureAwait(false);
                    ReadOnlySequence<byte> buffer = result.Buffer;
                    bool needMoreData, close;
                    do
                    {
                        SequencePosition consumed = session.Process(in buffer, _writer, maxFrames, out needMoreData, out close);
                        buffer = buffer.Slice(consumed);
                        FlushResult flushed = await _writer.FlushAsync().ConfigureAwait(false);
                        if (flushed.IsCompleted)
                        {
                            close = true;
                        }
                    }
                    while (!needMoreData && !close && !buffer.IsEmpty);

                    _reader.AdvanceTo(buffer.Start, buffer.End);
                    if (close || result.IsCompleted || result.IsCanceled || _draining)
                    {
                        break; // EOF (a partial frame left means the client died mid-frame), a fatal frame, or a stop
                    }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
            {
                // the peer reset the connection: nothing to answer
            }
            finally
            {
                session.Dispose();
                await _reader.CompleteAsync().ConfigureAwait(false);
                try
                {
                    await _writer.CompleteAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
                {
                    // the peer is gone
                }

                try
                {
                    _socket.Shutdown(SocketShutdown.Both);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    // already closed by the peer, or aborted by a stop that could not drain
                }

                await Stream.DisposeAsync().ConfigureAwait(false);
                _socket.Dispose();
                _server.Forget(this);
            }
        }
    }
}

/// <summary>Whether a path is a socket file (lstat's file type), for removing only stale sockets.</summary>
internal static partial class SocketFile
{
    private const uint FileTypeMask = 0xF000; // S_IFMT
    private const uint SocketType = 0xC000;   // S_IFSOCK

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int LStat(string path, byte* buffer);

    /// <summary>True when <paramref name="path"/> is a socket. Where the stat layout is not known here, false.</summary>
    public static unsafe bool IsSocket(string path)
    {
        // st_mode's offset in struct stat: x86-64 puts st_nlink (8 bytes) before it, the generic layout (arm64) after.
        int modeOffset = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 24,
            Architecture.Arm64 => 16,
            _ => -1,
        };
        if (modeOffset < 0 || !OperatingSystem.IsLinux())
        {
            return false;
        }

        byte* buffer = stackalloc byte[256];
        if (LStat(path, buffer) != 0)
        {
            return false;
        }

        uint mode = *(uint*)(buffer + modeOffset);
        return (mode & FileTypeMask) == SocketType;
    }
}
