// grid_dependency.cuh — programmatic dependent launch (sm_90) for the decode path's kernel chains
// (activation quantization, then the GEMV). A kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the kernel before it in the
// stream is still running, so it can issue the loads that depend on nothing earlier (the weights)
// before it waits. Included by the CUDA kernel sources only.
#pragma once

#include <cuda_runtime.h>

#ifndef MXQ_DEPENDENT_LAUNCH  // benchmark builds may set 0 to time the launches without it
#define MXQ_DEPENDENT_LAUNCH 1
#endif

namespace mxq {

// Whether the launchers ask for programmatic dependent launch (on sm_90).
inline constexpr bool kDependentLaunch = MXQ_DEPENDENT_LAUNCH != 0;

// The launch attribute that asks for it (cudaLaunchKernelEx; only where kDependentLaunch).
inline cudaLaunchAttribute dependent_launch_attribute() {
  cudaLaunchAttribute a{};
  a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a.val.programmaticStreamSerializationAllowed = 1;
  return a;
}

// Blocks until every grid this one depends on has completed and its memory writes are visible; a
// no-op for a kernel launched without the attribute, and below sm_90.
__device__ __forceinline__ void wait_for_prior_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel in the stream, if it was launched with the attribute, start now (it still
// waits for this one's completion before it reads what this one writes).
__device__ __forceinline__ void allow_dependent_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace mxq
