/* passes.h — the compiler's passes, one file and one entry point each. */
#ifndef GALVC_PASSES_H
#define GALVC_PASSES_H

#include "ir/ir.h"

/* Shapes, parameters, FLOPs and activation bytes of every layer (shape.c).
 * Also checks what only whole-model context can: widths that must agree,
 * heads that must divide, a head at the end. False on user error. */
bool pass_shape(Spec *spec, Diag *d);

#endif
