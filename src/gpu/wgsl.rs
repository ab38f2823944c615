//! The host–kernel contract, declared once in Rust and emitted into WGSL.
//!
//! A kernel module's resource bindings ([`Binding`]), the structs the host
//! writes into its buffers ([`WgslStruct`]) and its constants (the
//! workgroup size) are written here on the Rust side; [`compose`] prints
//! them as the module's prelude, so the shader files hold only code. The
//! host binds buffers through the same [`Binding`] values, so a slot number
//! is never a convention kept in two places. A test parses and validates
//! every composed module with naga (no adapter needed), checks each
//! struct's WGSL size against the Rust one, and checks that every dispatch
//! binds exactly what its entry point uses.

use std::borrow::Cow;
use std::fmt::Write;

/// How a kernel may touch a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Uniform,
    Read,
    ReadWrite,
}

/// One resource a kernel module declares in bind group 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub slot: u32,
    /// The variable's name in WGSL.
    pub name: &'static str,
    /// Its WGSL type (`array<u32>`, a struct's name).
    pub ty: &'static str,
    pub access: Access,
}

impl Binding {
    pub const fn uniform(slot: u32, name: &'static str, ty: &'static str) -> Binding {
        Binding { slot, name, ty, access: Access::Uniform }
    }

    pub const fn read(slot: u32, name: &'static str, ty: &'static str) -> Binding {
        Binding { slot, name, ty, access: Access::Read }
    }

    pub const fn read_write(slot: u32, name: &'static str, ty: &'static str) -> Binding {
        Binding { slot, name, ty, access: Access::ReadWrite }
    }

    /// Its WGSL declaration.
    pub fn declaration(&self) -> String {
        let space = match self.access {
            Access::Uniform => "uniform",
            Access::Read => "storage, read",
            Access::ReadWrite => "storage, read_write",
        };
        format!("@group(0) @binding({}) var<{space}> {}: {};", self.slot, self.name, self.ty)
    }
}

/// A `#[repr(C)]` host struct of `u32` fields that a kernel reads: its WGSL
/// twin is generated from [`WgslStruct::FIELDS`], and the naga test checks
/// that both have the same size.
pub trait WgslStruct {
    const NAME: &'static str;
    /// Field names in declaration order, every one a `u32`.
    const FIELDS: &'static [&'static str];
    /// `size_of::<Self>()` (read by the naga tests).
    #[cfg_attr(not(test), allow(dead_code))]
    const HOST_SIZE: usize;

    fn declaration() -> String {
        let mut out = format!("struct {} {{\n", Self::NAME);
        for field in Self::FIELDS {
            let _ = writeln!(out, "    {field}: u32,");
        }
        out.push_str("}\n");
        out
    }
}

/// The contract of one kernel module: its name, what the host declares for
/// it, and the code.
pub struct KernelModule<'a> {
    /// The module's name in test failures.
    #[cfg_attr(not(test), allow(dead_code))]
    pub label: &'a str,
    /// `const NAME: u32 = value;` lines (the workgroup size, limits).
    pub constants: &'a [(&'a str, u32)],
    /// Struct declarations ([`WgslStruct::declaration`]).
    pub structs: Vec<String>,
    pub bindings: &'a [Binding],
    /// Shader code, joined in order after the prelude.
    pub code: Vec<Cow<'a, str>>,
}

impl KernelModule<'_> {
    /// The module's WGSL: constants, structs and bindings, then the code.
    pub fn compose(&self) -> String {
        let code: Vec<&str> = self.code.iter().map(|c| c.as_ref()).collect();
        compose(self.constants, &self.structs, self.bindings, &code)
    }
}

/// WGSL for a module: the generated prelude (constants, structs, bindings)
/// followed by `code`.
pub fn compose(constants: &[(&str, u32)], structs: &[String], bindings: &[Binding], code: &[&str]) -> String {
    let mut out = String::from("// Generated prelude (src/gpu/wgsl.rs): the host's side of the contract.\n");
    for (name, value) in constants {
        let _ = writeln!(out, "const {name}: u32 = {value}u;");
    }
    for s in structs {
        out.push_str(s);
    }
    for b in bindings {
        out.push_str(&b.declaration());
        out.push('\n');
    }
    for part in code {
        out.push('\n');
        out.push_str(part);
    }
    out
}

/// naga's view of a composed module, for the contract tests of each
/// kernel (no adapter needed).
#[cfg(test)]
pub(crate) mod checked {
    use std::collections::BTreeSet;

    use super::{Binding, KernelModule};

    pub struct Checked {
        pub label: String,
        pub module: naga::Module,
        pub info: naga::valid::ModuleInfo,
    }

    /// Parse and validate `module` as a device would (every capability
    /// allowed: the 64-bit field path needs SHADER_INT64); panics with
    /// naga's report, the composed source's line included.
    pub fn check(module: &KernelModule<'_>) -> Checked {
        let source = module.compose();
        let parsed = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{} does not parse:\n{}", module.label, e.emit_to_string(&source)));
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&parsed)
            .unwrap_or_else(|e| panic!("{} does not validate:\n{}", module.label, e.emit_to_string(&source)));
        let checked = Checked { label: module.label.to_string(), module: parsed, info };
        checked.check_bindings(module.bindings);
        checked
    }

    impl Checked {
        /// The byte size of the struct `name` as WGSL lays it out.
        pub fn struct_size(&self, name: &str) -> usize {
            self.module
                .types
                .iter()
                .find_map(|(_, ty)| match &ty.inner {
                    naga::TypeInner::Struct { span, .. } if ty.name.as_deref() == Some(name) => Some(*span as usize),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{}: no struct {name}", self.label))
        }

        /// The binding slots `entry` uses (a layout inferred from the shader
        /// holds exactly these).
        pub fn used_slots(&self, entry: &str) -> BTreeSet<u32> {
            let index = self
                .module
                .entry_points
                .iter()
                .position(|e| e.name == entry)
                .unwrap_or_else(|| panic!("{}: no entry point {entry}", self.label));
            let uses = self.info.get_entry_point(index);
            self.module
                .global_variables
                .iter()
                .filter(|(handle, _)| !uses[*handle].is_empty())
                .filter_map(|(_, var)| var.binding.as_ref().map(|b| b.binding))
                .collect()
        }

        /// Every binding the module declares is the host's, in group 0, one per slot.
        fn check_bindings(&self, declared: &[Binding]) {
            let mut slots = BTreeSet::new();
            for (_, var) in self.module.global_variables.iter() {
                let Some(binding) = &var.binding else { continue };
                assert_eq!(binding.group, 0, "{}: {:?} is not in group 0", self.label, var.name);
                assert!(slots.insert(binding.binding), "{}: slot {} declared twice", self.label, binding.binding);
                let host = declared.iter().find(|b| b.slot == binding.binding);
                assert_eq!(
                    host.map(|b| b.name),
                    var.name.as_deref(),
                    "{}: slot {} is not the host's binding",
                    self.label,
                    binding.binding
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Pair {
        a: u32,
        b: u32,
    }

    impl WgslStruct for Pair {
        const NAME: &'static str = "Pair";
        const FIELDS: &'static [&'static str] = &["a", "b"];
        const HOST_SIZE: usize = size_of::<Pair>();
    }

    #[test]
    fn the_prelude_declares_constants_structs_and_bindings() {
        let _ = Pair { a: 0, b: 0 }.a + Pair { a: 0, b: 0 }.b;
        let text = compose(
            &[("WORKGROUP_SIZE", 64)],
            &[Pair::declaration()],
            &[Binding::uniform(0, "p", "Pair"), Binding::read_write(3, "out", "array<u32>")],
            &["fn f() {}"],
        );
        assert!(text.contains("const WORKGROUP_SIZE: u32 = 64u;"), "{text}");
        assert!(text.contains("struct Pair {\n    a: u32,\n    b: u32,\n}"), "{text}");
        assert!(text.contains("@group(0) @binding(0) var<uniform> p: Pair;"), "{text}");
        assert!(text.contains("@group(0) @binding(3) var<storage, read_write> out: array<u32>;"), "{text}");
        assert!(text.ends_with("fn f() {}"), "{text}");
    }
}
