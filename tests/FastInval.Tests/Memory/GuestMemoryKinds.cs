using System.Runtime.InteropServices;

namespace FastInval.Tests.Memory;

/// <summary>Which <see cref="GuestAddressSpace"/> implementation a rig hands its unit.</summary>
public enum GuestMemoryKind
{
    /// <summary><see cref="GuestMemory"/> over the buffers.</summary>
    Managed,

    /// <summary><see cref="NativeGuestMemory"/> over the buffers' pinned host addresses.</summary>
    Native,

    /// <summary><see cref="CallbackGuestMemory"/> whose callbacks reach the buffers through a <see cref="GuestMemory"/>.</summary>
    Callback,
}

/// <summary>Builds each kind of address space over the same pinned test buffers, so a test writes a queue into a
/// <c>byte[]</c> and the unit reads it through the implementation under test.</summary>
internal static class GuestSpaces
{
    /// <summary>A pinned buffer (its address is stable, so a native mapping of it stays valid).</summary>
    public static byte[] Pinned(int length) => GC.AllocateArray<byte>(length, pinned: true);

    /// <summary>An address space of <paramref name="kind"/> with every buffer of <paramref name="managed"/>'s layout
    /// mapped; <paramref name="managed"/> receives the mappings too (it is the callback kind's backing store).</summary>
    public static GuestAddressSpace Over(GuestMemoryKind kind, GuestMemory managed, params (ulong Address, byte[] Buffer)[] regions)
    {
        foreach ((ulong address, byte[] buffer) in regions)
        {
            managed.Map(address, buffer);
        }

        switch (kind)
        {
            case GuestMemoryKind.Native:
                var native = new NativeGuestMemory();
                foreach ((ulong address, byte[] buffer) in regions)
                {
                    native.Map(address, Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0), (ulong)buffer.Length);
                }

                return native;
            case GuestMemoryKind.Callback:
                return new CallbackGuestMemory((a, d) => managed.TryRead(a, d), (a, s) => managed.TryWrite(a, s));
            default:
                return managed;
        }
    }
}
