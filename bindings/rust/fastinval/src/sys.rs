//! Raw declarations of fastinval.h (same names, same layouts). Use the safe types of the crate root instead.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_void};

/// struct fastinval_descriptor: 32 bytes, the engine's own layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fastinval_descriptor {
    pub scope: u8,
    pub flags: u8,
    pub stages: u8,
    pub level_hint: u8,
    pub granule_hint: u8,
    pub config_kinds: u8,
    pub domain_id: u16,
    pub address_space_id: u32,
    pub source_id: u32,
    pub first: u64,
    pub last: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fastinval_engine_options {
    pub size: u32,
    pub iotlb_capacity: u32,
    pub device_tlb_capacity: u32,
    pub config_cache_capacity: u32,
    pub kernel: i32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fastinval_iotlb_entry {
    pub input_address: u64,
    pub output_address: u64,
    pub address_space_id: u32,
    pub domain_id: u16,
    pub rights: u16,
    pub stage: u8,
    pub granule: u8,
    pub size_log2: u8,
    pub flags: u8,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fastinval_devtlb_entry {
    pub input_address: u64,
    pub output_address: u64,
    pub source_id: u32,
    pub pasid: u32,
    pub rights: u16,
    pub size_log2: u8,
    pub flags: u8,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fastinval_config_entry {
    pub value: u64,
    pub source_id: u32,
    pub address_space_id: u32,
    pub domain_id: u16,
    pub kind: u8,
    pub reserved0: u8,
    pub reserved1: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fastinval_translation {
    pub output_address: u64,
    pub input_base: u64,
    pub rights: u16,
    pub size_log2: u8,
    pub global: u8,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fastinval_batch_result {
    pub ok: u32,
    pub timed_out: u32,
    pub completion_errors: u32,
    pub invalid: u32,
    pub first_failure_index: i32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fastinval_engine_counts {
    pub iotlb_count: u32,
    pub device_tlb_count: u32,
    pub config_count: u32,
    pub kernel: i32,
    pub device_tlb_invalidations: u64,
    pub reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fastinval_fault_plan {
    pub size: u32,
    pub reserved: u32,
    pub seed: u64,
    pub timeout_per_million: u32,
    pub completion_error_per_million: u32,
    pub timeout_source_ids: *const u32,
    pub timeout_ordinals: *const u64,
    pub completion_error_ordinals: *const u64,
    pub timeout_source_id_count: u32,
    pub timeout_ordinal_count: u32,
    pub completion_error_ordinal_count: u32,
    pub reserved2: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fastinval_iommufd_options {
    pub size: u32,
    pub flags: u32,
    pub engine: fastinval_engine_options,
}

extern "C" {
    pub fn fastinval_abi_version() -> u32;
    pub fn fastinval_version_string() -> *const c_char;
    pub fn fastinval_handle_count() -> c_int;
    pub fn fastinval_engine_create(options: *const fastinval_engine_options, out: *mut u64) -> c_int;
    pub fn fastinval_engine_destroy(engine: u64) -> c_int;
    pub fn fastinval_engine_counts(engine: u64, out: *mut fastinval_engine_counts) -> c_int;
    pub fn fastinval_engine_set_fault_plan(engine: u64, plan: *const fastinval_fault_plan) -> c_int;
    pub fn fastinval_iotlb_fill(engine: u64, entry: *const fastinval_iotlb_entry) -> c_int;
    pub fn fastinval_devtlb_fill(engine: u64, entry: *const fastinval_devtlb_entry) -> c_int;
    pub fn fastinval_config_fill(engine: u64, entry: *const fastinval_config_entry) -> c_int;
    pub fn fastinval_iotlb_lookup(engine: u64, stage: u8, domain_id: u16, address_space_id: u32, address: u64,
        out: *mut fastinval_translation) -> c_int;
    pub fn fastinval_devtlb_lookup(engine: u64, source_id: u32, pasid: u32, address: u64, out: *mut fastinval_translation) -> c_int;
    pub fn fastinval_config_lookup(engine: u64, kind: u8, source_id: u32, address_space_id: u32, out: *mut fastinval_config_entry) -> c_int;
    pub fn fastinval_execute(engine: u64, batch: *const fastinval_descriptor, count: usize, statuses: *mut u8,
        result: *mut fastinval_batch_result) -> c_int;
    pub fn fastinval_iommufd_create(options: *const fastinval_iommufd_options, out: *mut u64) -> c_int;
    pub fn fastinval_iommufd_destroy(ctx: u64) -> c_int;
    pub fn fastinval_iommufd_ioctl(ctx: u64, request: u32, arg: *mut c_void) -> c_int;
    pub fn fastinval_iommufd_add_device(ctx: u64, kind: u32, stream_id: u32, ats: c_int, dev_id: *mut u32) -> c_int;
    pub fn fastinval_iommufd_attach_device(ctx: u64, dev_id: u32, pt_id: u32) -> c_int;
    pub fn fastinval_iommufd_detach_device(ctx: u64, dev_id: u32) -> c_int;
    pub fn fastinval_iommufd_remove_device(ctx: u64, dev_id: u32) -> c_int;
}
