#include <stdio.h>
int main(void) { puts("kao"); return 0; }
