# make        builds the trainers and the data tools
# make test   builds every target, runs the CPU tests, and the GPU tests when a GPU is present
# make bench  times the trainer (GPU)
NVCC ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
# Hopper (H100/H200) with wgmma; add e.g. -gencode=arch=compute_80,code=sm_80 for A100
GPU_ARCH ?= -gencode=arch=compute_90a,code=sm_90a
NVCC_FLAGS ?= -O3 -std=c++17 $(GPU_ARCH) -Xcompiler -Wall,-Wno-unused-function
NVCC_LIBS = -lcublasLt
CC ?= gcc
CFLAGS ?= -O2 -Wall -Wextra
MPICC ?= $(shell command -v mpicc 2>/dev/null)

comma := ,
# Multi-GPU (MPI + NCCL) when both are found: NCCL from CUDA's folder, from NCCL_HOME, or from
# the Python package nvidia-nccl (which ships only libnccl.so.2). NO_MULTI_GPU=1 skips it.
NCCL_HOME ?= $(shell python3 -c "import nvidia.nccl as m; print(list(m.__path__)[0])" 2>/dev/null)
ifeq ($(NO_MULTI_GPU),)
ifneq ($(MPICC),)
ifneq ($(wildcard $(dir $(NVCC))../include/nccl.h),)
NCCL_FLAGS = -lnccl
else ifneq ($(wildcard $(NCCL_HOME)/include/nccl.h),)
NCCL_FLAGS = -I$(NCCL_HOME)/include -L$(NCCL_HOME)/lib -l:libnccl.so.2 -Xlinker -rpath,$(NCCL_HOME)/lib
endif
endif
endif
ifneq ($(NCCL_FLAGS),)
MPI_FLAGS = $(patsubst -Wl$(comma)%,-Xlinker=%,$(patsubst -pthread,-Xcompiler=-pthread,$(shell $(MPICC) --showme:compile) $(shell $(MPICC) --showme:link)))
MULTI_GPU_FLAGS = -DMULTI_GPU $(MPI_FLAGS) $(NCCL_FLAGS)
endif

LLMC_HEADERS = $(wildcard llmc/*.h llmc/*.cuh)
TRAINERS = train_gpt2_bf16 train_gpt2_fp8
GPU_TESTS = dev/test_kernels dev/test_attention_fp8 dev/test_model dev/test_fp8 dev/test_act dev/test_mx dev/test_mx_gemm dev/test_mx_linear dev/test_mx_blackwell_gpu
# needs MPI + NCCL and >= 2 GPUs: run by dev/test_multi_gpu.sh, not by make test
MULTI_GPU_TESTS = $(if $(MULTI_GPU_FLAGS),dev/test_zero_gather)
CPU_TESTS = dev/test_gpt2_cpu dev/test_dataloader dev/test_schedule dev/test_fp8_host dev/test_mx_host dev/test_mx_blackwell $(if $(MPICC),dev/test_sharding_mpi)

.PHONY: all test bench clean
all: $(TRAINERS)

# The tokenizer needs PCRE2's headers (Debian: libpcre2-dev); without them the data tools
# are not built and their tests say they were skipped.
HAVE_PCRE2 := $(shell printf "\043define PCRE2_CODE_UNIT_WIDTH 8\n\043include <pcre2.h>\n" | $(CC) -E -x c - >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_PCRE2),yes)
include data/data.mk
else
DATA_BINS :=
.PHONY: test-data
test-data:
	@echo "SKIPPED tokenizer and shard tests: no pcre2.h (apt-get install libpcre2-dev)"
endif

train_gpt2_%: train_gpt2_%.cu $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS) $(MULTI_GPU_FLAGS)

dev/test_kernels: dev/test_kernels.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

dev/test_attention_fp8: dev/test_attention_fp8.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

dev/test_model: dev/test_model.cu $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

dev/test_fp8: dev/test_fp8.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

dev/test_act: dev/test_act.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

dev/test_mx: dev/test_mx.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

dev/test_mx_gemm: dev/test_mx_gemm.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

dev/test_mx_linear: dev/test_mx_linear.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS)

# plus PTX of a plain (not "a") target: the driver compiles it for a Blackwell GPU, which cannot
# run sm_90a code, so the swizzle kernel runs there too
dev/test_mx_blackwell_gpu: dev/test_mx_blackwell_gpu.cu dev/test_util.cuh $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -gencode=arch=compute_90,code=compute_90 -o $@ $< $(NVCC_LIBS)

dev/test_fp8_host: dev/test_fp8_host.c dev/test_check.h llmc/fp8.h llmc/fp8_scaling.h
	$(CC) $(CFLAGS) -o $@ $< -lm

dev/test_mx_host: dev/test_mx_host.c dev/test_check.h llmc/mx.h llmc/fp8.h llmc/rand.h
	$(CC) $(CFLAGS) -o $@ $< -lm

dev/test_mx_blackwell: dev/test_mx_blackwell.c dev/test_check.h llmc/mx_blackwell.h llmc/mx.h llmc/fp8.h llmc/rand.h
	$(CC) $(CFLAGS) -o $@ $< -lm

dev/test_gpt2_cpu: dev/test_gpt2_cpu.c dev/gpt2_ref.h dev/test_check.h llmc/utils.h
	$(CC) $(CFLAGS) -o $@ $< -lm

dev/test_schedule: dev/test_schedule.c llmc/schedule.h dev/test_check.h
	$(CC) $(CFLAGS) -o $@ $< -lm

dev/test_dataloader: dev/test_dataloader.c dev/test_check.h dev/test_shards.h llmc/dataloader.h llmc/zero_shard.h llmc/utils.h
	$(CC) $(CFLAGS) -o $@ $<

dev/test_sharding_mpi: dev/test_sharding_mpi.c dev/test_check.h dev/test_shards.h llmc/dataloader.h llmc/zero_shard.h llmc/utils.h
	$(MPICC) $(CFLAGS) -o $@ $<

dev/test_zero_gather: dev/test_zero_gather.cu dev/test_check.h $(LLMC_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LIBS) $(MULTI_GPU_FLAGS)

test: all $(GPU_TESTS) $(CPU_TESTS) $(MULTI_GPU_TESTS)
	@bash dev/run_tests.sh

bench: $(TRAINERS)
	@bash scripts/bench.sh

clean:
	rm -f $(TRAINERS) $(GPU_TESTS) $(CPU_TESTS) $(MULTI_GPU_TESTS) $(DATA_BINS)
