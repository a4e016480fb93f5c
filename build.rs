//! Compiles the protobuf contracts in `proto/` with protox, a pure-Rust protobuf compiler, so that a
//! fresh machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: [&str; 4] = [
        "proto/tracklab_system_monitor.proto",
        "proto/tracklab/monitor/v1/monitor.proto",
        "proto/tpu/tpu_metric_service.proto",
        "proto/kubelet/podresources/v1/api.proto",
    ];
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
