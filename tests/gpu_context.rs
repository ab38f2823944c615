//! The shared GPU context: acquisition, shader compilation errors, a real
//! dispatch with readback, and backend resolution.

use causality_vm::backend::{Backend, ResolvedBackend};
use causality_vm::gpu::{self, GpuError};
use wgpu::util::DeviceExt;

/// The compile observer is process-wide: tests that install one take turns,
/// or one test's `observe_compilation(None)` blinds the other mid-run.
static OBSERVER_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

const DOUBLE: &str = r#"
@group(0) @binding(0) var<storage, read_write> data: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2u + 1u; }
}
"#;

#[test]
fn dispatch_and_readback_match_the_cpu() {
    let Some(ctx) = gpu::test_context() else { return };
    eprintln!("adapter: {}", ctx.describe());
    let module = ctx.compile("double", DOUBLE).expect("valid WGSL compiles");
    let pipeline = ctx.compute_pipeline("double", &module, "main").expect("pipeline");
    for n in [1usize, 63, 64, 65, 1000] {
        let input: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2654435761)).collect();
        let buffer = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("data"),
            contents: bytemuck::cast_slice(&input),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry { binding: 0, resource: buffer.as_entire_binding() }],
        });
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(n.div_ceil(64) as u32, 1, 1);
        }
        ctx.queue.submit(Some(encoder.finish()));
        let bytes = ctx.read_buffer("data", &buffer, (n * 4) as u64).expect("readback");
        let output: &[u32] = bytemuck::cast_slice(&bytes);
        let expected: Vec<u32> = input.iter().map(|x| x.wrapping_mul(2).wrapping_add(1)).collect();
        assert_eq!(output, expected.as_slice(), "n = {n}");
    }
}

#[test]
fn the_compile_observer_sees_every_pipeline_start_and_finish() {
    let Some(ctx) = gpu::test_context() else { return };
    let _turn = OBSERVER_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    gpu::observe_compilation(Some(std::sync::Arc::new(move |event: gpu::Compiling<'_>| {
        log.lock().unwrap().push(format!("{event:?}"));
    })));
    let module = ctx.compile("observed", DOUBLE).expect("valid WGSL compiles");
    ctx.compute_pipeline("observed", &module, "main").expect("pipeline");
    gpu::observe_compilation(None);
    let seen = seen.lock().unwrap();
    let ours: Vec<&String> = seen.iter().filter(|e| e.contains("\"observed\"")).collect();
    assert_eq!(ours, [r#"Started("observed")"#, r#"Finished("observed")"#]);
}

#[test]
fn invalid_wgsl_is_a_shader_error_naming_the_label() {
    let Some(ctx) = gpu::test_context() else { return };
    match ctx.compile("broken-kernel", "fn main( { }") {
        Err(GpuError::Shader { label, reason }) => {
            assert_eq!(label, "broken-kernel");
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("invalid WGSL compiled"),
    }
}

#[test]
fn explicit_backends_resolve_as_asked() {
    let (cpu, ctx) = gpu::resolve(Backend::Cpu).unwrap();
    assert_eq!(cpu, ResolvedBackend::Cpu);
    assert!(ctx.is_none());
    if let Some(shared) = gpu::test_context() {
        let (resolved, ctx) = gpu::resolve(Backend::Gpu).unwrap();
        assert_eq!(resolved, ResolvedBackend::Gpu);
        assert!(ctx.is_some());
        // Auto takes hardware adapters only: lavapipe is no accelerator.
        let expected = if shared.is_software() { ResolvedBackend::Cpu } else { ResolvedBackend::Gpu };
        assert_eq!(gpu::resolve(Backend::Auto).unwrap().0, expected);
    }
}

/// Every kernel's pipelines come from one cache on the context: the same
/// source and entry compile once and are shared; a different source is a
/// different pipeline.
#[test]
fn pipelines_are_compiled_once_per_source_and_entry() {
    let Some(ctx) = gpu::test_context() else { return };
    let _turn = OBSERVER_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let source = DOUBLE.replace("2u + 1u", "2u + 3u");
    gpu::observe_compilation(Some(std::sync::Arc::new(move |event: gpu::Compiling<'_>| {
        log.lock().unwrap().push(format!("{event:?}"));
    })));
    let first = ctx.pipeline("cached", &source, "main").expect("valid WGSL compiles");
    let again = ctx.pipeline("cached", &source, "main").expect("cached");
    let other = ctx.pipeline("cached", DOUBLE, "main").expect("valid WGSL compiles");
    gpu::observe_compilation(None);
    assert!(std::sync::Arc::ptr_eq(&first, &again), "the same pipeline, not a second compile");
    assert!(!std::sync::Arc::ptr_eq(&first, &other), "another source is another pipeline");
    let started = seen.lock().unwrap().iter().filter(|e| e.as_str() == r#"Started("cached::main")"#).count();
    assert_eq!(started, 2, "two sources, two compiles");
    assert!(matches!(ctx.pipeline("broken", "fn main( {", "main"), Err(GpuError::Shader { .. })));
}
