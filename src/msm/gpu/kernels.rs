//! The MSM pipelines (compiled once per `GpuMsm`) and the small amount of
//! plumbing that records a sequence of dispatches into one compute pass.

use wgpu::util::DeviceExt;

use super::contract::{stage_source, MsmParams};
use super::graph::Kernel;
use super::plan::dispatch_shape;
use super::shaders::{FieldPath, Stage};
use crate::gpu::{GpuContext, GpuError};

impl MsmParams {
    pub fn uniform(&self, ctx: &GpuContext) -> wgpu::Buffer {
        ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("msm params"),
            contents: bytemuck::bytes_of(self),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }
}

pub struct Kernels {
    pub count_digits: wgpu::ComputePipeline,
    pub scatter_digits: wgpu::ComputePipeline,
    pub scan_chunk_sums: wgpu::ComputePipeline,
    pub scan_chunk_prefix: wgpu::ComputePipeline,
    pub scan_offsets: wgpu::ComputePipeline,
    pub accumulate_bases: wgpu::ComputePipeline,
    pub accumulate_points: wgpu::ComputePipeline,
    pub window_segments: wgpu::ComputePipeline,
}

impl Kernels {
    pub fn compile(ctx: &GpuContext, path: FieldPath) -> Result<Kernels, GpuError> {
        let digits = ctx.compile("msm_digits", &stage_source(path, Stage::Digits))?;
        let scan = ctx.compile("msm_scan", &stage_source(path, Stage::Scan))?;
        let accumulate = ctx.compile("msm_accumulate", &stage_source(path, Stage::Accumulate))?;
        let reduce = ctx.compile("msm_reduce", &stage_source(path, Stage::Reduce))?;
        Ok(Kernels {
            count_digits: ctx.compute_pipeline("count_digits", &digits, "count_digits")?,
            scatter_digits: ctx.compute_pipeline("scatter_digits", &digits, "scatter_digits")?,
            scan_chunk_sums: ctx.compute_pipeline("scan_chunk_sums", &scan, "scan_chunk_sums")?,
            scan_chunk_prefix: ctx.compute_pipeline("scan_chunk_prefix", &scan, "scan_chunk_prefix")?,
            scan_offsets: ctx.compute_pipeline("scan_offsets", &scan, "scan_offsets")?,
            accumulate_bases: ctx.compute_pipeline("accumulate_bases", &accumulate, "accumulate_bases")?,
            accumulate_points: ctx.compute_pipeline("accumulate_points", &accumulate, "accumulate_points")?,
            window_segments: ctx.compute_pipeline("window_segments", &reduce, "window_segments")?,
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
