//! Elementwise runners for the field and curve test kernels
//! (bn254_test_ops.wgsl), so tests can compare each WGSL operation
//! with ark-ff / ark-ec. Inputs and outputs are raw words in the device layout
//! (see [`super::convert`]).

use wgpu::util::DeviceExt;

use std::sync::Arc;

use super::contract::{test_fq2_module, test_ops_source};
use super::contract::{OpParams, LHS, OP_PARAMS, OUT, RHS};
use super::plan::WORKGROUP;
use super::shaders::{CurveFormulas, FieldPath};
use crate::gpu::{GpuContext, GpuError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Square = 3,
    ToMontgomery = 4,
    FromMontgomery = 5,
    Neg = 6,
    Inverse = 7,
    Double = 8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fq2Op {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Square = 3,
    Neg = 4,
    Double = 5,
    Inverse = 6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurveOp {
    /// XYZZ + XYZZ.
    Add = 0,
    /// XYZZ + affine (the rhs slot's first 16 words).
    AddAffine = 1,
    /// 2 * XYZZ (lhs).
    Double = 2,
    /// 2 * affine (rhs).
    DoubleAffine = 3,
}

/// Apply a field op to `lhs[i]`, `rhs[i]` (8 words each) on the device.
pub fn field_op(
    ctx: &Arc<GpuContext>,
    path: FieldPath,
    op: FieldOp,
    lhs: &[[u32; 8]],
    rhs: &[[u32; 8]],
) -> Result<Vec<[u32; 8]>, GpuError> {
    let pipeline = || pipeline(ctx, path, CurveFormulas::Straight, "field_op");
    let words = run_on(ctx, pipeline, "field_op", op as u32, lhs.as_flattened(), rhs.as_flattened(), lhs.len(), 8)?;
    Ok(words.chunks_exact(8).map(|c| c.try_into().unwrap_or([0; 8])).collect())
}

/// Apply an Fq2 op to `lhs[i]`, `rhs[i]` (16 words each: c0, then c1) on the device.
pub fn fq2_op(
    ctx: &Arc<GpuContext>,
    path: FieldPath,
    op: Fq2Op,
    lhs: &[[u32; 16]],
    rhs: &[[u32; 16]],
) -> Result<Vec<[u32; 16]>, GpuError> {
    let pipeline = || ctx.pipeline("bn254_test_fq2", &test_fq2_module(path).compose(), "fq2_op");
    let words = run_on(ctx, pipeline, "fq2_op", op as u32, lhs.as_flattened(), rhs.as_flattened(), lhs.len(), 16)?;
    Ok(words.chunks_exact(16).map(|c| c.try_into().unwrap_or([0; 16])).collect())
}

/// Apply a G1 curve op, in `formulas`, to `lhs[i]`, `rhs[i]` (32-word slots) on the device.
pub fn curve_op(
    ctx: &Arc<GpuContext>,
    path: FieldPath,
    formulas: CurveFormulas,
    op: CurveOp,
    lhs: &[[u32; 32]],
    rhs: &[[u32; 32]],
) -> Result<Vec<[u32; 32]>, GpuError> {
    let pipeline = || pipeline(ctx, path, formulas, "curve_op");
    let words = run_on(ctx, pipeline, "curve_op", op as u32, lhs.as_flattened(), rhs.as_flattened(), lhs.len(), 32)?;
    Ok(words.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect())
}

/// CPU drivers compile a pipeline on its first dispatch, which takes seconds
/// for the curve kernels; the context's cache compiles each entry once.
fn pipeline(
    ctx: &Arc<GpuContext>,
    path: FieldPath,
    formulas: CurveFormulas,
    entry: &str,
) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
    ctx.pipeline("bn254_test_ops", &test_ops_source(path, formulas), entry)
}

/// Run `entry` elementwise; its pipeline is made only for a valid, non-empty call.
#[allow(clippy::too_many_arguments)]
fn run_on(
    ctx: &Arc<GpuContext>,
    pipeline: impl FnOnce() -> Result<Arc<wgpu::ComputePipeline>, GpuError>,
    entry: &str,
    op: u32,
    lhs: &[u32],
    rhs: &[u32],
    count: usize,
    stride: usize,
) -> Result<Vec<u32>, GpuError> {
    if lhs.len() != count * stride || rhs.len() != count * stride {
        return Err(GpuError::Dispatch { label: entry.into(), reason: "operand arrays differ in length".into() });
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    let pipeline = pipeline()?;
    let storage = |label: &str, data: &[u32], extra: wgpu::BufferUsages| {
        ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | extra,
        })
    };
    let params = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("op params"),
        contents: bytemuck::bytes_of(&OpParams { op, count: count as u32, ..Default::default() }),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let lhs_buf = storage("lhs", lhs, wgpu::BufferUsages::empty());
    let rhs_buf = storage("rhs", rhs, wgpu::BufferUsages::empty());
    let out = storage("out", &vec![0u32; count * stride], wgpu::BufferUsages::COPY_SRC);
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: OP_PARAMS.slot, resource: params.as_entire_binding() },
            wgpu::BindGroupEntry { binding: LHS.slot, resource: lhs_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: RHS.slot, resource: rhs_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: OUT.slot, resource: out.as_entire_binding() },
        ],
    });
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(entry) });
    {
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(entry), timestamp_writes: None });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups((count as u32).div_ceil(WORKGROUP), 1, 1);
    }
    ctx.queue.submit(Some(encoder.finish()));
    let bytes = ctx.read_buffer(entry, &out, (count * stride * 4) as u64)?;
    Ok(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}
