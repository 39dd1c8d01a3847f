// Every mindrec::Error subclass as a Python exception class, message unchanged. Each also
// derives from the built-in exception a Python user would catch for it (ValueError for bad
// arguments, configs and file contents; OSError for files and unreachable servers; ...).
#include "mindrec/error.hpp"

#include <Python.h>
#include <nanobind/stl/string.h>

#include <cstring>

#include "core.hpp"

namespace mindrec::py {

namespace {

struct Classes {
  PyObject *error, *invalid_argument, *config_error, *io_error, *format_error, *unsupported,
      *cuda_error, *remote_error, *remote_auth_error, *remote_not_found;
};
Classes classes{};

PyObject* make_class(nb::module_& m, const char* name, const char* doc, std::initializer_list<PyObject*> bases) {
  nb::object tuple = nb::steal(PyTuple_New(static_cast<Py_ssize_t>(bases.size())));
  Py_ssize_t i = 0;
  for (PyObject* b : bases) {
    Py_INCREF(b);
    PyTuple_SET_ITEM(tuple.ptr(), i++, b);
  }
  // "<module>.<name>": the module's own name, so that the stub generator (which imports the
  // extension as a top-level `_core`) sees the classes as the module's own.
  const std::string qualified = nb::cast<std::string>(m.attr("__name__")) + "." + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, tuple.ptr(), nullptr);
  if (!cls) throw nb::python_error();
  m.attr(name) = nb::handle(cls);  // the module holds a reference; `classes` borrows it
  Py_DECREF(cls);
  return cls;
}

// The message as a str: bytes that are not UTF-8 (a file's raw token quoted, a server's
// answer) become U+FFFD instead of a UnicodeDecodeError replacing the mindrec error (F25).
nb::object message(const std::exception& e) {
  const char* w = e.what();
  return nb::steal(PyUnicode_DecodeUTF8(w, static_cast<Py_ssize_t>(std::strlen(w)), "replace"));
}

void raise(PyObject* cls, const std::exception& e) {
  nb::object m = message(e);
  if (!m) return;  // (out of memory: that error is set)
  PyErr_SetObject(cls, m.ptr());
}

void raise_remote(PyObject* cls, const RemoteError& e) {
  nb::object m = message(e);
  if (!m) return;
  nb::object exc = nb::steal(PyObject_CallFunctionObjArgs(cls, m.ptr(), nullptr));
  if (!exc) return;  // the call set the error
  if (PyObject_SetAttrString(exc.ptr(), "code", nb::int_(e.code()).ptr()) != 0) return;
  PyErr_SetObject(cls, exc.ptr());
}

}  // namespace

void bind_errors(nb::module_& m) {
  auto& c = classes;
  c.error = make_class(m, "Error", "Root of every exception mindrec raises.", {PyExc_Exception});
  c.invalid_argument = make_class(m, "InvalidArgument", "An argument is outside its documented domain (shape, range, id).",
                                  {c.error, PyExc_ValueError});
  c.config_error = make_class(m, "ConfigError", "A configuration is invalid (the message names the key path).",
                              {c.error, PyExc_ValueError});
  c.io_error = make_class(m, "IoError", "A file could not be read or written, or a server could not be reached.",
                          {c.error, PyExc_OSError});
  c.format_error = make_class(m, "FormatError", "A file's content is malformed (the message names file and line, field or offset).",
                              {c.error, PyExc_ValueError});
  c.unsupported = make_class(m, "Unsupported", "Valid, but this build or backend cannot do it (the message names the CMake option).",
                             {c.error, PyExc_NotImplementedError});
  c.cuda_error = make_class(m, "CudaError", "A CUDA runtime or cuBLAS call failed.", {c.error, PyExc_RuntimeError});
  c.remote_error = make_class(m, "RemoteError", "A remote service (Milvus) refused a request; `code` is its error code.",
                              {c.error, PyExc_RuntimeError});
  c.remote_auth_error = make_class(m, "RemoteAuthError", "The remote service refused the credentials.",
                                   {c.remote_error, PyExc_PermissionError});
  c.remote_not_found = make_class(m, "RemoteNotFound", "The remote collection does not exist.",
                                  {c.remote_error, PyExc_LookupError});

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const RemoteAuthError& e) {
      raise_remote(classes.remote_auth_error, e);
    } catch (const RemoteNotFound& e) {
      raise_remote(classes.remote_not_found, e);
    } catch (const RemoteError& e) {
      raise_remote(classes.remote_error, e);
    } catch (const InvalidArgument& e) {
      raise(classes.invalid_argument, e);
    } catch (const ConfigError& e) {
      raise(classes.config_error, e);
    } catch (const IoError& e) {
      raise(classes.io_error, e);
    } catch (const FormatError& e) {
      raise(classes.format_error, e);
    } catch (const Unsupported& e) {
      raise(classes.unsupported, e);
    } catch (const CudaError& e) {
      raise(classes.cuda_error, e);
    } catch (const Error& e) {
      raise(classes.error, e);
    }
  });
}

}  // namespace mindrec::py
