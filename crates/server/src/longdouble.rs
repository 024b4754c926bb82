//! Emulation of the x87 80-bit `long double` arithmetic and formatting Redis uses for
//! INCRBYFLOAT and HINCRBYFLOAT, so replies match Redis digit for digit.
