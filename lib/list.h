/*
 * lib/list.h: the two intrusive lists weir's structs are linked in, as
 * macros over the structs' own pointers (like BSD's queue.h): a queue, a
 * head and a tail pointer with the elements linked by `next`; and a doubly
 * linked list, a head pointer with the elements linked by `prev` and
 * `next`. Arguments are lvalues, evaluated more than once. No locking.
 */
#ifndef WEIR_LIB_LIST_H
#define WEIR_LIB_LIST_H

/* e (its next already NULL) at the tail of the queue. */
#define QUEUE_PUSH(head, tail, e)                                                                                      \
    do {                                                                                                               \
        if (tail)                                                                                                      \
            (tail)->next = (e);                                                                                        \
        else                                                                                                           \
            (head) = (e);                                                                                              \
        (tail) = (e);                                                                                                  \
    } while (0)

/* e (its prev already NULL) at the head of the list. */
#define DLIST_PUSH(head, e)                                                                                            \
    do {                                                                                                               \
        (e)->next = (head);                                                                                            \
        if (head)                                                                                                      \
            (head)->prev = (e);                                                                                        \
        (head) = (e);                                                                                                  \
    } while (0)

/* e out of the list (its own pointers left as they were). */
#define DLIST_UNLINK(head, e)                                                                                          \
    do {                                                                                                               \
        if ((e)->prev)                                                                                                 \
            (e)->prev->next = (e)->next;                                                                               \
        else                                                                                                           \
            (head) = (e)->next;                                                                                        \
        if ((e)->next)                                                                                                 \
            (e)->next->prev = (e)->prev;                                                                               \
    } while (0)

#endif
