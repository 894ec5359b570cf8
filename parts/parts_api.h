/* Declarations of the model parts, in reading order (inlined into mmspcl.h at release). */
#include "kernels_api.h"
#include "bpe_api.h"
#include "roberta_api.h"
#include "spcl_api.h"
#include "image_api.h"
#include "clip_api.h"
#include "heads_api.h"
#include "meld_api.h"
