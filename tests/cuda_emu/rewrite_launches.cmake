# cmake -DIN=file.cu -DOUT=file.cpp -P rewrite_launches.cmake
# Rewrites each kernel launch of a CUDA source, `kernel<<<config>>>(args)` (one per line, as kao's
# sources write them), into the emulator's `kao_emu::launch(<lambda calling kernel>, config)(args)`:
# the lambda lets a template kernel deduce its parameters from the arguments, as the launch does.
file(READ ${IN} text)
string(REGEX REPLACE "(^|\n)([ ]*)([^\n]+)<<<([^\n]+)>>>\\("
       "\\1\\2kao_emu::launch([](auto... kao_emu_args) { \\3(kao_emu_args...); }, \\4)("
       text "${text}")
if(text MATCHES "<<<")
  message(FATAL_ERROR "${IN}: a kernel launch the emulator's rewrite does not recognise")
endif()
file(WRITE ${OUT}.tmp "#line 1 \"${IN}\"\n${text}")
file(RENAME ${OUT}.tmp ${OUT})
