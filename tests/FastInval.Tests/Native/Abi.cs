using System.Runtime.InteropServices;
using FastInval.Native;

namespace FastInval.Tests.Native;

/// <summary>
/// The C ABI as function pointers: either the entry points of this process's FastInval.Native assembly (their
/// [UnmanagedCallersOnly] bodies, called through a real reverse-P/Invoke transition), or the exports of a built
/// libfastinval.so loaded by path (NativeAOT: its own runtime inside this process).
/// </summary>
internal sealed unsafe class Abi
{
    public delegate* unmanaged<NativeEngineOptions*, ulong*, int> EngineCreate;
    public delegate* unmanaged<ulong, int> EngineDestroy;
    public delegate* unmanaged<ulong, NativeEngineCounts*, int> EngineCounts;
    public delegate* unmanaged<ulong, NativeFaultPlan*, int> SetFaultPlan;
    public delegate* unmanaged<ulong, NativeIotlbEntry*, int> IotlbFill;
    public delegate* unmanaged<ulong, NativeDeviceTlbEntry*, int> DeviceTlbFill;
    public delegate* unmanaged<ulong, NativeConfigEntry*, int> ConfigFill;
    public delegate* unmanaged<ulong, byte, ushort, uint, ulong, NativeTranslation*, int> IotlbLookup;
    public delegate* unmanaged<ulong, uint, uint, ulong, NativeTranslation*, int> DeviceTlbLookup;
    public delegate* unmanaged<ulong, byte, uint, uint, NativeConfigEntry*, int> ConfigLookup;
    public delegate* unmanaged<ulong, InvalidationDescriptor*, nuint, InvalidationStatus*, NativeBatchResult*, int> Execute;
    public delegate* unmanaged<NativeIommufdOptions*, ulong*, int> IommufdCreate;
    public delegate* unmanaged<ulong, int> IommufdDestroy;
    public delegate* unmanaged<ulong, uint, void*, int> IommufdIoctl;
    public delegate* unmanaged<uint> Version;

    /// <summary>Where the table came from (for messages).</summary>
    public string Source { get; private init; } = "";

    /// <summary>The entry points compiled into this test process.</summary>
    public static Abi InProcess() => new()
    {
        Source = "in-process entry points",
        EngineCreate = &NativeExports.EngineCreate,
        EngineDestroy = &NativeExports.EngineDestroy,
        EngineCounts = &NativeExports.EngineCounts,
        SetFaultPlan = &NativeExports.EngineSetFaultPlan,
        IotlbFill = &NativeExports.IotlbFill,
        DeviceTlbFill = &NativeExports.DeviceTlbFill,
        ConfigFill = &NativeExports.ConfigFill,
        IotlbLookup = &NativeExports.IotlbLookup,
        DeviceTlbLookup = &NativeExports.DeviceTlbLookup,
        ConfigLookup = &NativeExports.ConfigLookup,
        Execute = &NativeExports.Execute,
        IommufdCreate = &NativeExports.IommufdCreate,
        IommufdDestroy = &NativeExports.IommufdDestroy,
        IommufdIoctl = &NativeExports.IommufdIoctl,
        Version = &NativeExports.Version,
    };

    /// <summary>The exports of the shared library at <paramref name="path"/>.</summary>
    public static Abi Load(string path)
    {
        nint lib = NativeLibrary.Load(path);
        nint F(string name) => NativeLibrary.GetExport(lib, name);
        return new Abi
        {
            Source = path,
            EngineCreate = (delegate* unmanaged<NativeEngineOptions*, ulong*, int>)F("fastinval_engine_create"),
            EngineDestroy = (delegate* unmanaged<ulong, int>)F("fastinval_engine_destroy"),
            EngineCounts = (delegate* unmanaged<ulong, NativeEngineCounts*, int>)F("fastinval_engine_counts"),
            SetFaultPlan = (delegate* unmanaged<ulong, NativeFaultPlan*, int>)F("fastinval_engine_set_fault_plan"),
            IotlbFill = (delegate* unmanaged<ulong, NativeIotlbEntry*, int>)F("fastinval_iotlb_fill"),
            DeviceTlbFill = (delegate* unmanaged<ulong, NativeDeviceTlbEntry*, int>)F("fastinval_devtlb_fill"),
            ConfigFill = (delegate* unmanaged<ulong, NativeConfigEntry*, int>)F("fastinval_config_fill"),
            IotlbLookup = (delegate* unmanaged<ulong, byte, ushort, uint, ulong, NativeTranslation*, int>)F("fastinval_iotlb_lookup"),
            DeviceTlbLookup = (delegate* unmanaged<ulong, uint, uint, ulong, NativeTranslation*, int>)F("fastinval_devtlb_lookup"),
            ConfigLookup = (delegate* unmanaged<ulong, byte, uint, uint, NativeConfigEntry*, int>)F("fastinval_config_lookup"),
            Execute = (delegate* unmanaged<ulong, InvalidationDescriptor*, nuint, InvalidationStatus*, NativeBatchResult*, int>)F("fastinval_execute"),
            IommufdCreate = (delegate* unmanaged<NativeIommufdOptions*, ulong*, int>)F("fastinval_iommufd_create"),
            IommufdDestroy = (delegate* unmanaged<ulong, int>)F("fastinval_iommufd_destroy"),
            IommufdIoctl = (delegate* unmanaged<ulong, uint, void*, int>)F("fastinval_iommufd_ioctl"),
            Version = (delegate* unmanaged<uint>)F("fastinval_abi_version"),
        };
    }

    /// <summary>FASTINVAL_NATIVE_LIB names a built libfastinval.so (native/test.sh sets it): that library; otherwise the
    /// in-process entry points.</summary>
    public static Abi FromEnvironment()
    {
        string? path = Environment.GetEnvironmentVariable("FASTINVAL_NATIVE_LIB");
        return string.IsNullOrEmpty(path) ? InProcess() : Load(path);
    }
}
