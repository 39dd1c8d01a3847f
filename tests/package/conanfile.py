"""Conan test package: builds tests/package (the consumer project) against the created
mindrec package and runs it (load a small weights file, recall, compare with brute force)."""
import os

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout


class MindrecTestPackage(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    test_type = "explicit"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["MINDREC_CONSUMER_WEIGHTS"] = os.path.join(
            self.source_folder, "..", "fixtures", "small-model.safetensors")
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def test(self):
        if can_run(self):
            weights = os.path.join(self.source_folder, "..", "fixtures", "small-model.safetensors")
            self.run(f"{os.path.join(self.cpp.build.bindir, 'consumer')} {weights}", env="conanrun")
