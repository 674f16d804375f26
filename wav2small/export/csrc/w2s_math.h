/* Logarithm and exponential for the float parts of the wav2small C bundle, built from + - * / only,
 * so that the host and a Cortex-M4F compute identical bits (a C library's logf and expf differ
 * between implementations). */
#ifndef W2S_MATH_H
#define W2S_MATH_H

/* natural logarithm of a normal positive x, within about 1 ulp */
float w2s_log(float x);

/* e^x within about 1 ulp; 0 below e^-87.3 (the smallest normal float), +inf above e^88.7 */
float w2s_exp(float x);

#endif
