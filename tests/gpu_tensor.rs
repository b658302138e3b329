//! Tensors on GPU devices: moving between the CPU and each test device (emulator always,
//! CUDA when present) keeps shape, dtype and bits; clones are deep; CPU-only access to a
//! GPU tensor is an error, not a panic.

use sparsevlp::gpu::test_devices;
use sparsevlp::{DType, Device, Tensor};

#[test]
fn round_trips_keep_every_bit_for_every_dtype() {
    for device in test_devices() {
        for dtype in [DType::F32, DType::F64, DType::BF16, DType::F16] {
            let t = Tensor::randn([3, 5, 7], 1.0, 11, dtype);
            let on = t.to_device(device).unwrap();
            assert_eq!(on.device(), device);
            assert_eq!(on.dims(), &[3, 5, 7]);
            assert_eq!(on.dtype(), dtype);
            let back = on.to_device(Device::Cpu).unwrap();
            assert_eq!(back, t, "{device} {dtype}");
            assert_eq!(on.to_vec_f64(), t.to_vec_f64());
        }
    }
}

#[test]
fn clones_are_deep_and_conversions_stay_on_the_device() {
    for device in test_devices() {
        let t = Tensor::randn([4, 4], 1.0, 3, DType::F32)
            .to_device(device)
            .unwrap();
        let c = t.clone();
        assert_eq!(c, t);
        let g1 = t.gpu_storage().unwrap().buffer.device_address();
        let g2 = c.gpu_storage().unwrap().buffer.device_address();
        assert_ne!(g1, g2, "a clone owns its own buffer");
        let half = t.to_dtype(DType::BF16);
        assert_eq!(half.device(), device);
        assert_eq!(half.dtype(), DType::BF16);
    }
}

#[test]
fn cpu_only_access_to_a_gpu_tensor_is_an_error() {
    let t = Tensor::randn([2, 2], 1.0, 1, DType::F32)
        .to_device(Device::Emu)
        .unwrap();
    let err = t.as_slice::<f32>().unwrap_err().to_string();
    assert!(err.contains("lives on emu"), "{err}");
    assert!(Tensor::randn([2], 1.0, 1, DType::F32)
        .gpu_storage()
        .is_err());
}

#[test]
fn unavailable_devices_are_refused_with_a_reason() {
    let err = Device::parse("tpu").unwrap_err().to_string();
    assert!(err.contains("unknown device 'tpu'"), "{err}");
    assert_eq!(Device::parse("emu").unwrap(), Device::Emu);
    assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
    if sparsevlp::gpu::cuda::probe().devices.is_empty() {
        let err = Device::parse("cuda").unwrap_err().to_string();
        assert!(err.contains("not available"), "{err}");
        assert_eq!(Device::parse("auto").unwrap(), Device::Cpu);
    }
}
