/*
 * pvh.S - PVH entry for pvhprobe: the Xen ELF note that names the 32-bit
 * physical entry point (XEN_ELFNOTE_PHYS32_ENTRY) and that entry.
 *
 * The PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h) enters
 * in 32-bit protected mode, paging off, CS/DS/ES/SS flat 4 GiB, CR0.PE=1
 * (and ET), CR4=0, EFLAGS.IF=0, EBX = struct hvm_start_info.  ESP and the
 * other registers are undefined.  pvh_start records EBX, CR0, CR4 and
 * EFLAGS as found, then goes on through boot.S's _start (own GDT, page
 * tables for 0..4 GiB, long mode, kmain) with EAX = 0, so rt.c does not
 * mistake this for a multiboot boot.  boot.S's multiboot header is
 * discarded by pvh.ld.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.balign 4
	.long 4				/* namesz: "Xen\0" */
	.long 4				/* descsz: a 32-bit physical address */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_start
	.balign 4

	.section .text.pvh, "ax"
	.code32
	.globl pvh_start
pvh_start:
	movl %ebx, pvh_ebx
	movl %cr0, %eax
	movl %eax, pvh_cr0
	movl %cr4, %eax
	movl %eax, pvh_cr4
	movl $stack0_top, %esp		/* undefined at entry: pushfl needs one */
	pushfl
	popl pvh_eflags
	xorl %eax, %eax
	jmp _start			/* boot.S: EBX is still the start info */

	.data
	.balign 4
	.globl pvh_ebx, pvh_cr0, pvh_cr4, pvh_eflags
pvh_ebx:	.long 0
pvh_cr0:	.long 0
pvh_cr4:	.long 0
pvh_eflags:	.long 0

	.section .note.GNU-stack, "", @progbits
