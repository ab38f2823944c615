//! The MSM pipelines (from the device's pipeline cache) and the small amount of
//! plumbing that records a sequence of dispatches into one compute pass.

use std::sync::Arc;

use super::contract::{stage_source, MsmParams};
use super::graph::Kernel;
use super::plan::dispatch_shape;
use super::shaders::{FieldPath, Group, Stage};
use crate::gpu::{GpuContext, GpuError};

impl MsmParams {
    pub fn uniform(&self, ctx: &GpuContext) -> Result<wgpu::Buffer, GpuError> {
        ctx.buffer_init("msm params", bytemuck::bytes_of(self), wgpu::BufferUsages::UNIFORM)
    }
}

pub struct Kernels {
    pub count_digits: Arc<wgpu::ComputePipeline>,
    pub scatter_digits: Arc<wgpu::ComputePipeline>,
    pub scan_chunk_sums: Arc<wgpu::ComputePipeline>,
    pub scan_chunk_prefix: Arc<wgpu::ComputePipeline>,
    pub scan_offsets: Arc<wgpu::ComputePipeline>,
    pub accumulate_bases: Arc<wgpu::ComputePipeline>,
    pub accumulate_points: Arc<wgpu::ComputePipeline>,
    pub window_segments: Arc<wgpu::ComputePipeline>,
}

impl Kernels {
    /// The pipelines for `path` over `group`, from the context's cache
    /// (compiled once per device; the digit and scan pipelines are shared by
    /// both groups).
    pub fn compile(ctx: &GpuContext, path: FieldPath, group: Group) -> Result<Kernels, GpuError> {
        let [digits, scan, accumulate, reduce] = [Stage::Digits, Stage::Scan, Stage::Accumulate, Stage::Reduce]
            .map(|stage| stage_source(path, stage, group));
        Ok(Kernels {
            count_digits: ctx.pipeline("msm_digits", &digits, "count_digits")?,
            scatter_digits: ctx.pipeline("msm_digits", &digits, "scatter_digits")?,
            scan_chunk_sums: ctx.pipeline("msm_scan", &scan, "scan_chunk_sums")?,
            scan_chunk_prefix: ctx.pipeline("msm_scan", &scan, "scan_chunk_prefix")?,
            scan_offsets: ctx.pipeline("msm_scan", &scan, "scan_offsets")?,
            accumulate_bases: ctx.pipeline("msm_accumulate", &accumulate, "accumulate_bases")?,
            accumulate_points: ctx.pipeline("msm_accumulate", &accumulate, "accumulate_points")?,
            window_segments: ctx.pipeline("msm_reduce", &reduce, "window_segments")?,
        })
    }
}

impl Kernels {
    /// The pipeline of one entry point.
    pub fn pipeline(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        match kernel {
            Kernel::CountDigits => &self.count_digits,
            Kernel::ScatterDigits => &self.scatter_digits,
            Kernel::ScanChunkSums => &self.scan_chunk_sums,
            Kernel::ScanChunkPrefix => &self.scan_chunk_prefix,
            Kernel::ScanOffsets => &self.scan_offsets,
            Kernel::AccumulateBases => &self.accumulate_bases,
            Kernel::AccumulatePoints => &self.accumulate_points,
            Kernel::WindowSegments => &self.window_segments,
        }
    }
}

/// One dispatch: a pipeline, the buffers at its bindings (exactly those the
/// entry point uses, since layouts are inferred), and its size.
pub struct Step<'a> {
    pub pipeline: &'a wgpu::ComputePipeline,
    pub bindings: Vec<(u32, &'a wgpu::Buffer)>,
    /// Workgroups when `group` is zero, threads otherwise.
    pub threads: u32,
    pub group: u32,
}

/// Record `steps` in order into one compute pass (wgpu orders dependent dispatches).
pub fn record(ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, steps: &[Step<'_>]) {
    let bind_groups: Vec<wgpu::BindGroup> = steps
        .iter()
        .map(|step| {
            let entries: Vec<wgpu::BindGroupEntry<'_>> = step
                .bindings
                .iter()
                .map(|(binding, buffer)| wgpu::BindGroupEntry {
                    binding: *binding,
                    resource: buffer.as_entire_binding(),
                })
                .collect();
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &step.pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })
        .collect();
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("msm"), timestamp_writes: None });
    let max_dim = ctx.limits.max_compute_workgroups_per_dimension;
    for (step, bind_group) in steps.iter().zip(&bind_groups) {
        pass.set_pipeline(step.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        let (x, y) =
            if step.group == 0 { (step.threads, 1) } else { dispatch_shape(step.threads, step.group, max_dim) };
        pass.dispatch_workgroups(x, y, 1);
    }
}
