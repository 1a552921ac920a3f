// The Python module cyclegan_ext._C: importing it loads this library, which registers the ops
// (TORCH_LIBRARY in ops.cpp). It also offers `forward_y`, the layers' eager entry into the
// forward op: arguments unpacked directly and passed to the typed op handle (the generic
// torch.ops path boxes every argument into a stack first), the output y returned.
#include "norm_ops.h"

#include <Python.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

namespace cyclegan_ext {
namespace {

const char* const kArgNames[] = {"x", "weight", "bias", "rho"};

// A tensor argument, or nullopt for None; raises TypeError naming the argument otherwise.
bool unpack_tensor(PyObject* obj, int index, bool optional, OptionalTensor* out) {
  if (optional && obj == Py_None) {
    *out = c10::nullopt;
    return true;
  }
  if (!THPVariable_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "fused_norm: expected %s to be a torch.Tensor%s, got %s", kArgNames[index],
                 optional ? " or None" : "", Py_TYPE(obj)->tp_name);
    return false;
  }
  *out = THPVariable_Unpack(obj);
  return true;
}

// forward_y(x, weight, bias, rho, unbiased: bool, eps: float, activation: int, negative_slope: float) -> y
PyObject* forward_y(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 8) {
    PyErr_Format(PyExc_TypeError, "forward_y expects 8 arguments, got %zd", nargs);
    return nullptr;
  }
  OptionalTensor tensors[4];
  for (int i = 0; i < 4; ++i) {
    if (!unpack_tensor(args[i], i, /*optional=*/i > 0, &tensors[i])) return nullptr;
  }
  const int unbiased = PyObject_IsTrue(args[4]);
  const double eps = PyFloat_AsDouble(args[5]);
  const long long activation = PyLong_AsLongLong(args[6]);
  const double negative_slope = PyFloat_AsDouble(args[7]);
  if (unbiased < 0 || PyErr_Occurred()) return nullptr;
  at::Tensor y;
  {
    pybind11::gil_scoped_release no_gil;
    y = std::get<0>(forward_op().call(*tensors[0], tensors[1], tensors[2], tensors[3], unbiased != 0, eps,
                                      activation, negative_slope));
  }
  return THPVariable_Wrap(std::move(y));
  END_HANDLE_TH_ERRORS
}

PyMethodDef kMethods[] = {
    {"forward_y", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&forward_y)), METH_FASTCALL,
     "forward_y(x, weight, bias, rho, unbiased, eps, activation, negative_slope) -> y"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace
}  // namespace cyclegan_ext

extern "C" PyObject* PyInit__C(void) {
#ifdef CYCLEGAN_EXT_NEEDS_AVX2
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    PyErr_SetString(PyExc_ImportError,
                    "cyclegan_ext._C was built with AVX2/FMA but this CPU lacks them; rebuild on this "
                    "machine, or with CYCLEGAN_EXT_CPU_ISA=default");
    return nullptr;
  }
#endif
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, cyclegan_ext::kMethods};
  return PyModule_Create(&module_def);
}
