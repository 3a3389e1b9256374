/* graph.c — building the layer Graph. */
#include "ir.h"

#include <string.h>

/* Append a zeroed layer of the given kind; the graph's arena owns it. */
Layer *graph_add_layer(Graph *g, LayerKind kind, Loc loc) {
    if (g->n_layers == g->cap_layers) {
        int cap = g->cap_layers ? 2 * g->cap_layers : 16;
        Layer **layers = arena_alloc(g->arena, (size_t)cap * sizeof *layers);
        if (g->n_layers) memcpy(layers, g->layers, (size_t)g->n_layers * sizeof *layers);
        g->layers = layers;
        g->cap_layers = cap;
    }
    Layer *l = arena_alloc(g->arena, sizeof *l);
    l->kind = kind;
    l->loc = loc;
    l->index = g->n_layers;
    g->layers[g->n_layers++] = l;
    return l;
}
