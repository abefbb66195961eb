/*
 * shell.S - the replica shell: the smallest PVH image libxl can build a
 * domain from (an ELF with XEN_ELFNOTE_PHYS32_ENTRY).  A replica is built
 * from it so that its build costs no kernel decompression; it never runs:
 * before the replica is unpaused its memory and vCPU state are a
 * checkpoint's.  Should it run anyway, it stops its vCPU for good.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 4
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long shell_start
	.balign 4

	.text
	.code32
	.globl shell_start
shell_start:
	cli
1:	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
