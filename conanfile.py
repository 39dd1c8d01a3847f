"""Conan 2 recipe for mindrec.

Dependencies are the Debian packages the project builds with; a profile maps them with
[platform_requires] (see cmake/conan/debian12), so Conan builds nothing but mindrec and the
package's own mindrecConfig.cmake (installed by CMake) is what consumers find.

    conan profile detect
    conan create . -pr:a cmake/conan/debian12 --test-folder tests/package
"""
import os

from conan import ConanFile
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout


class MindrecConan(ConanFile):
    name = "mindrec"
    version = "0.1.0"
    description = "MIND multi-interest candidate generation, in-process (training, evaluation, vector store)"
    url = "https://example.invalid/mindrec"
    topics = ("recommender-systems", "mind", "faiss", "candidate-generation")
    package_type = "library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"shared": [True, False], "fPIC": [True, False], "with_cuda": [True, False],
               "with_faiss": [True, False], "with_yaml": [True, False], "with_milvus": [True, False],
               "with_hnsw": [True, False]}
    default_options = {"shared": False, "fPIC": True, "with_cuda": False, "with_faiss": True,
                       "with_yaml": True, "with_milvus": True, "with_hnsw": True}
    exports_sources = ("CMakeLists.txt", "cmake/*", "include/*", "src/*", "cuda/*")

    def config_options(self):
        if self.settings.os == "Windows":
            del self.options.fPIC

    def configure(self):
        if self.options.shared:
            self.options.rm_safe("fPIC")

    def requirements(self):
        # Eigen is in the public headers; the rest is linked by the library (and reaches a
        # consumer's link line when mindrec is static).
        self.requires("eigen/3.4.0", transitive_headers=True)
        self.requires("nlohmann_json/3.11.2")  # header-only, used inside the library
        if self.options.with_yaml:
            self.requires("yaml-cpp/0.7.0")
        if self.options.with_faiss:
            self.requires("faiss/1.7.3")
        if self.options.with_milvus:
            self.requires("cpp-httplib/0.11.4")  # the milvus:// store's HTTP client
        if self.options.with_hnsw:
            self.requires("hnswlib/0.6.2")  # header-only: the hnsw: store

    def validate(self):
        from conan.tools.build import check_min_cppstd
        check_min_cppstd(self, 17)

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["MINDREC_WITH_CUDA"] = bool(self.options.with_cuda)
        tc.cache_variables["MINDREC_WITH_FAISS"] = bool(self.options.with_faiss)
        tc.cache_variables["MINDREC_WITH_YAML"] = bool(self.options.with_yaml)
        tc.cache_variables["MINDREC_WITH_MILVUS"] = bool(self.options.with_milvus)
        tc.cache_variables["MINDREC_WITH_HNSW"] = bool(self.options.with_hnsw)
        tc.cache_variables["MINDREC_BUILD_TESTS"] = False
        tc.cache_variables["MINDREC_BUILD_TOOLS"] = False
        tc.cache_variables["MINDREC_BUILD_EXAMPLES"] = False
        tc.cache_variables["MINDREC_BUILD_BENCHMARKS"] = False
        tc.cache_variables["MINDREC_INSTALL"] = True
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        CMake(self).install()

    def package_info(self):
        # Consumers use the package's own lib/cmake/mindrec/mindrecConfig.cmake (it finds the
        # dependencies in the order they need), not a generated one.
        self.cpp_info.set_property("cmake_find_mode", "none")
        self.cpp_info.set_property("cmake_file_name", "mindrec")
        self.cpp_info.set_property("cmake_target_name", "mindrec::mindrec")
        self.cpp_info.set_property("pkg_config_name", "mindrec")
        self.cpp_info.builddirs = [os.path.join("lib", "cmake", "mindrec")]
        self.cpp_info.libs = ["mindrec"]
        if self.settings.os == "Linux":
            self.cpp_info.system_libs = ["m", "pthread"]
