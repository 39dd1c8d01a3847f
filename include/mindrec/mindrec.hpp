// Umbrella header: the whole CPU-safe public API (never includes CUDA headers). The
// header-only Eigen kernels (mindrec/cpu/interests.hpp) are included separately.
#pragma once

#include "mindrec/config.hpp"
#include "mindrec/data.hpp"
#include "mindrec/device.hpp"
#include "mindrec/error.hpp"
#include "mindrec/eval.hpp"
#include "mindrec/export.hpp"
#include "mindrec/file_io.hpp"
#include "mindrec/log.hpp"
#include "mindrec/model.hpp"
#include "mindrec/npy.hpp"
#include "mindrec/paddlerec.hpp"
#include "mindrec/prepare.hpp"
#include "mindrec/recommender.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/safetensors.hpp"
#include "mindrec/topk.hpp"
#include "mindrec/train.hpp"
#include "mindrec/vector_store.hpp"
#include "mindrec/weights.hpp"
#include "mindrec/version.hpp"
