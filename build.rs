//! Compiles the service's proto files (feature `service`) with protox, a
//! protobuf compiler written in Rust, so a fresh machine builds with cargo
//! alone: no system `protoc`.

fn main() {
    println!("cargo:rerun-if-changed=proto");
    #[cfg(feature = "service")]
    service::compile();
}

#[cfg(feature = "service")]
mod service {
    use std::path::PathBuf;

    const PROTO: &str = "proto/causality/accelerator/v1/accelerator.proto";

    pub fn compile() {
        let files = match protox::compile([PROTO], ["proto"]) {
            Ok(files) => files,
            Err(e) => panic!("{PROTO}: {e}"),
        };
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        // Server reflection serves this set, so tools like grpcurl need no proto file.
        let encoded = prost::Message::encode_to_vec(&files);
        std::fs::write(out.join("accelerator_descriptor.bin"), encoded).expect("writing the descriptor set");
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            // prost's codec, with a request's element count bounded before it is decoded.
            .codec_path("crate::service::codec::BoundedCodec")
            .compile_fds(files)
            .unwrap_or_else(|e| panic!("generating code for {PROTO}: {e}"));
    }
}
